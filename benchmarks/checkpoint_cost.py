"""Time to write one pre-training checkpoint, against an epoch's time.

Builds the model of a pre-training config (default: the headline FOLK
ViT-B/16, 65,536 prototypes) on the CPU, takes one AdamW step so that the
optimizer holds its state, and writes what ``Runner.save_checkpoint`` writes
(weights, optimizer state, meta) with the project's atomic save (temporary
file, fsync, rename) ``--repeat`` times into ``--out-dir``. The checkpoint
is written by rank 0 while the other ranks wait at the next collective, so
its time adds to the epoch's.

The epoch time is an input (``--epoch-seconds``): by default 1,251
iterations (ImageNet-1K at 8 x 128) of the 0.135 s eager FOLK ViT-B step
measured on an H200. Prints a table and writes JSON (``--json``).

A slow shared filesystem makes the write many times slower than a local
disk: measure on the work directory the run will use (``--out-dir``). To
save less often than every epoch, save by iterations, e.g.
``--cfg-options default_hooks.checkpoint.by_epoch=False
default_hooks.checkpoint.interval=5000``.

    python benchmarks/checkpoint_cost.py --out-dir /tmp/ckpt_cost
"""
import argparse
import json
import os
import os.path as osp
import time

import torch

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))


def build(config: str):
    from mmengine.config import Config
    from mmengine.registry import DefaultScope
    from mmpretrain.registry import MODELS

    import folk  # noqa: F401  (registers FOLK's modules)
    cfg = Config.fromfile(config)
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        model = MODELS.build(
            dict(cfg.model, data_preprocessor=cfg.data_preprocessor))
    params = [p for p in model.parameters() if p.requires_grad]
    optim = torch.optim.AdamW(params, lr=1e-4)
    for p in params:  # one step: AdamW's exp_avg / exp_avg_sq exist
        p.grad = torch.zeros_like(p)
    optim.step()
    return model, optim


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument(
        '--config', default=osp.join(REPO, 'configs', 'folk_vit-b.py'))
    parser.add_argument('--out-dir', required=True)
    parser.add_argument('--repeat', type=int, default=3)
    parser.add_argument(
        '--epoch-seconds',
        type=float,
        default=1251 * 0.135,
        help='time of one training epoch (default: 1,251 x 0.135 s)')
    parser.add_argument('--json', default=None)
    args = parser.parse_args(argv)

    from folk.engine.checkpoint import atomic_torch_save
    model, optim = build(args.config)
    ckpt = dict(
        meta=dict(epoch=1, iter=1251),
        state_dict=model.state_dict(),
        optimizer=optim.state_dict())
    os.makedirs(args.out_dir, exist_ok=True)
    path = osp.join(args.out_dir, 'epoch_1.pth')
    times = []
    for _ in range(args.repeat):
        start = time.perf_counter()
        atomic_torch_save(ckpt, path)
        times.append(time.perf_counter() - start)
    size = os.path.getsize(path)
    os.remove(path)
    best = min(times)
    row = dict(
        config=osp.relpath(args.config, REPO),
        bytes=size,
        write_seconds_best=round(best, 3),
        write_seconds_all=[round(t, 3) for t in times],
        epoch_seconds=args.epoch_seconds,
        fraction_of_epoch=round(best / args.epoch_seconds, 4),
        out_dir=args.out_dir)
    print('| config | size (GB) | write (s, best of '
          f'{args.repeat}) | epoch (s) | share of the epoch |')
    print('|---|---:|---:|---:|---:|')
    share = 100 * row['fraction_of_epoch']
    print(f"| {row['config']} | {size / 1e9:.2f} | {best:.2f} | "
          f'{args.epoch_seconds:.0f} | {share:.1f} % |')
    print(json.dumps(row))
    if args.json:
        with open(args.json, 'w') as f:
            json.dump(row, f, indent=2)
    return 0


if __name__ == '__main__':
    raise SystemExit(main())
