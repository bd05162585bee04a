"""FOLK under FSDP (2 gloo processes, CPU) == 1 process, teacher included.

The tiny FOLK of ``tests/test_models/_tiny.py`` is trained for two SGD
steps once unwrapped on the whole batch and once in MMEngine's
``MMFullyShardedDataParallel`` with :func:`folk.engine.folk_fsdp_wrap_policy`
on two processes, each with half the batch. Every parameter is sharded
(each process holds half of every flat parameter), the EMA teacher is
updated on the local shards, and the gathered (full) state dict -- what the
checkpoints of ``state_dict_cfg='full'`` hold -- must equal the single
process's, with the same names, so that the converters read it.
"""
import os
import os.path as osp
import socket

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from _tiny import build, make_batch, set_schedule  # tests/test_models

import folk  # noqa: F401  (registers FOLK; spawned workers import this)

BATCH = 4
STEPS = 2


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def _train(model, module, rank=0, world=1):
    from mmengine.optim import OptimWrapper
    optim = OptimWrapper(
        torch.optim.SGD([p for p in model.parameters() if p.requires_grad],
                        lr=0.5,
                        momentum=0.9))
    losses = []
    for step in range(STEPS):
        set_schedule(max_iters=100, cur_iter=step)
        batch = make_batch(batch=BATCH, size=32, seed=step)
        half = slice(rank * BATCH // world, (rank + 1) * BATCH // world)
        data = dict(
            inputs=[v[half] for v in batch['inputs']],
            data_samples=batch['data_samples'][half])
        log_vars = model.train_step(data, optim)
        losses.append(float(log_vars['loss_distill']))
    return losses


def _worker(rank, world, port, out_dir):
    os.environ.update(MASTER_ADDR='127.0.0.1', MASTER_PORT=str(port))
    torch.set_num_threads(1)
    dist.init_process_group('gloo', rank=rank, world_size=world)
    from mmengine.model import MMFullyShardedDataParallel
    from torch.distributed.fsdp import (FullStateDictConfig,
                                        FullyShardedDataParallel,
                                        StateDictType)
    model = MMFullyShardedDataParallel(
        module=build(),
        device_id=torch.device('cpu'),
        auto_wrap_policy=dict(type='folk_fsdp_wrap_policy'),
        use_orig_params=True)
    units = sorted(
        type(m.module).__name__ for m in model.modules()
        if isinstance(m, FullyShardedDataParallel))
    # the elements of the teacher's and the student's backbone held here
    local = tuple(
        sum(p.numel() for p in m.parameters())
        for m in (model.module.teacher.module.backbone, model.module.backbone))
    losses = _train(model, model.module, rank, world)
    with MMFullyShardedDataParallel.state_dict_type(
            model, StateDictType.FULL_STATE_DICT,
            FullStateDictConfig(offload_to_cpu=True, rank0_only=False)):
        state = {k: v.clone() for k, v in model.state_dict().items()}
    torch.save(
        dict(losses=losses, state=state, units=units, local=local),
        osp.join(out_dir, f'rank{rank}.pt'))
    dist.destroy_process_group()


def test_fsdp_two_processes_match_one_process(tmp_path):
    mp.spawn(_worker, args=(2, _free_port(), str(tmp_path)), nprocs=2)
    ranks = [torch.load(tmp_path / f'rank{r}.pt') for r in (0, 1)]
    torch.set_num_threads(1)
    single = build()
    single_losses = _train(single, single)
    ref = single.state_dict()

    # the root, and the student's and the teacher's backbone, layers and
    # projector, each its own unit
    units = ranks[0]['units']
    assert units.count('FOLK') == 1
    assert units.count('VisionTransformer') == 2
    assert units.count('DINOProjector') == 2
    assert units.count('TransformerEncoderLayer') == 2 * len(
        build().backbone.layers)
    # each process holds a shard of the tensors (sizes differ by padding)
    full = sum(p.numel() for p in single.backbone.parameters())
    for i in (0, 1):  # teacher, student
        held = [r['local'][i] for r in ranks]
        assert max(held) < 0.6 * full and sum(held) >= full, (held, full)
    for step in range(STEPS):
        mean = sum(r['losses'][step] for r in ranks) / 2
        assert abs(mean - single_losses[step]) <= 1e-5 * abs(
            single_losses[step]) + 2e-5, (step, mean, single_losses[step])
    for r in ranks:
        # the same names as an unwrapped model: converters read them
        assert set(r['state']) == set(ref)
        teacher = [k for k in ref if k.startswith('teacher.module.')]
        assert teacher
        for key in teacher + ['backbone.cls_token', 'projector.mlp.0.weight']:
            torch.testing.assert_close(
                r['state'][key], ref[key], rtol=1e-4, atol=1e-5, msg=key)
    # and the teacher moved (not a copy of the initial student)
    init = build().state_dict()
    assert not torch.allclose(ref['teacher.module.backbone.cls_token'],
                              init['teacher.module.backbone.cls_token'])
