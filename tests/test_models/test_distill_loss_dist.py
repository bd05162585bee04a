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
    import folk  # noqa: F401
    from mmpretrain.registry import MODELS
    loss = MODELS.build(dict(type='DistillLoss', out_dim=8,
                             center_momentum=0.9))
    # rank r contributes r + 1 rows, all equal to r + 1
    logits = torch.full((rank + 1, 8), float(rank + 1))
    loss.update_center(logits)
    torch.save(loss.center, os.path.join(out_dir, f'center{rank}.pt'))
    dist.destroy_process_group()


def test_centre_is_all_reduced_over_two_processes(tmp_path):
    mp.spawn(_worker, args=(2, _free_port(), str(tmp_path)), nprocs=2)
    c0 = torch.load(tmp_path / 'center0.pt')
    c1 = torch.load(tmp_path / 'center1.pt')
    # global mean over the 3 rows: (1 + 2 + 2) / 3
    expected = torch.full((1, 8), 0.1 * 5.0 / 3.0)
    torch.testing.assert_close(c0, expected)
    torch.testing.assert_close(c1, expected)
