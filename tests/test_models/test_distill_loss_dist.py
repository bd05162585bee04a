"""The teacher centre is all-reduced over processes (2-process gloo)."""
import os
import socket

import torch
import torch.distributed as dist
import torch.multiprocessing as mp


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def _worker(rank, world, port, out_dir):
    os.environ.update(MASTER_ADDR='127.0.0.1', MASTER_PORT=str(port))
    dist.init_process_group('gloo', rank=rank, world_size=world)
    from mmpretrain.registry import MODELS

    import folk  # noqa: F401

    # rank r contributes r + 1 rows, all equal to r + 1
    logits = torch.full((rank + 1, 8), float(rank + 1))
    for init in ('zeros', 'first_batch'):
        loss = MODELS.build(
            dict(
                type='DistillLoss',
                out_dim=8,
                center_momentum=0.9,
                center_init=init))
        loss.update_center(logits)
        torch.save(loss.center, os.path.join(out_dir, f'{init}{rank}.pt'))
    dist.destroy_process_group()


def test_centre_is_all_reduced_over_two_processes(tmp_path):
    mp.spawn(_worker, args=(2, _free_port(), str(tmp_path)), nprocs=2)
    # global mean over the 3 rows: (1 + 2 + 2) / 3; a per-process mean
    # would give 1 on rank 0 and 2 on rank 1.
    mean = 5.0 / 3.0
    for init, expected in (('zeros', 0.1 * mean), ('first_batch', mean)):
        for rank in (0, 1):
            center = torch.load(tmp_path / f'{init}{rank}.pt')
            torch.testing.assert_close(center, torch.full((1, 8), expected))
