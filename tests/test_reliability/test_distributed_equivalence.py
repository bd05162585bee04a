"""2-process DDP (gloo, CPU) at global batch 2N == 1 process at batch 2N.

The tiny FOLK model of ``tests/test_models/_tiny.py`` is trained for two
steps with SGD, once unwrapped on the whole batch of 4 and once in
``MMDistributedDataParallel(device_ids=None)`` on two processes, each taking
its half of the same batch. Each rank's loss is a mean over its half and
DDP averages the gradients, so the averaged losses, the updated student, the
EMA teacher and the all-reduced centre must match the single process.
"""
import os
import os.path as osp
import socket
import sys

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

sys.path.insert(0, osp.join(osp.dirname(osp.dirname(osp.abspath(__file__))),
                            'test_models'))
from _tiny import build, make_batch, set_schedule  # noqa: E402

BATCH = 4
STEPS = 2


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def _train(model, rank=0, world=1):
    """Two SGD steps; the losses and the final state of ``model``."""
    from mmengine.model import is_model_wrapper
    from mmengine.optim import OptimWrapper
    module = model.module if is_model_wrapper(model) else model
    optim = OptimWrapper(torch.optim.SGD(
        [p for p in module.parameters() if p.requires_grad], lr=0.5,
        momentum=0.9))
    losses = []
    for step in range(STEPS):
        set_schedule(max_iters=100, cur_iter=step)
        batch = make_batch(batch=BATCH, size=32, seed=step)
        half = slice(rank * BATCH // world, (rank + 1) * BATCH // world)
        data = dict(inputs=[v[half] for v in batch['inputs']],
                    data_samples=batch['data_samples'][half])
        log_vars = model.train_step(data, optim)
        losses.append({k: float(log_vars[k])
                       for k in ('loss_freq', 'loss_distill')})
    state = {k: v.detach().clone() for k, v in module.state_dict().items()}
    return dict(losses=losses, state=state)


def _worker(rank, world, port, out_dir):
    os.environ.update(MASTER_ADDR='127.0.0.1', MASTER_PORT=str(port))
    torch.set_num_threads(1)
    dist.init_process_group('gloo', rank=rank, world_size=world)
    import folk  # noqa: F401
    from mmengine.model import MMDistributedDataParallel
    model = MMDistributedDataParallel(module=build(), device_ids=None)
    result = _train(model, rank, world)
    torch.save(result, os.path.join(out_dir, f'rank{rank}.pt'))
    dist.destroy_process_group()


def test_two_processes_match_one_process(tmp_path):
    mp.spawn(_worker, args=(2, _free_port(), str(tmp_path)), nprocs=2)
    ranks = [torch.load(tmp_path / f'rank{r}.pt') for r in (0, 1)]
    torch.set_num_threads(1)
    single = _train(build())

    for step in range(STEPS):
        for key in ('loss_freq', 'loss_distill'):
            mean = sum(r['losses'][step][key] for r in ranks) / 2
            ref = single['losses'][step][key]
            assert abs(mean - ref) <= 1e-5 * abs(ref) + 1e-6, (step, key,
                                                               mean, ref)

    ref = single['state']
    # the things that must agree: teacher, centre, the student the
    # (averaged) gradients produced
    keys = [k for k in ref if k.startswith('teacher.')]
    keys += ['distill_head.loss_module.center', 'backbone.cls_token',
             'backbone.layers.0.attn.qkv.weight', 'neck.decoder.0.weight',
             'projector.mlp.0.weight']
    assert any(k.startswith('teacher.module.backbone.') for k in keys)
    assert int(ref['teacher.steps']) == STEPS
    for k in keys:
        for r, result in enumerate(ranks):
            torch.testing.assert_close(result['state'][k], ref[k],
                                       rtol=1e-4, atol=1e-5,
                                       msg=lambda m: f'rank {r}, {k}: {m}')
    # the student moved: the comparison is not vacuous
    initial = build().state_dict()
    assert not torch.allclose(ref['backbone.cls_token'],
                              initial['backbone.cls_token'])
    assert not torch.allclose(ref['teacher.module.projector.mlp.0.weight'],
                              initial['teacher.module.projector.mlp.0.weight'])
