"""``EpochSeedHook``: the epoch loop resumes exactly (no DataLoader workers;
the SIGKILL test covers persistent workers)."""
import pytest
from runner_utils import demo_cfg, run

from folk.engine.seeding import MAIN_PROCESS, epoch_seed


def _epoch_cfg(work_dir, data_root, ann, **options):
    cfg = demo_cfg(
        work_dir,
        data_root,
        max_iters=4,
        batch_size=4,
        ckpt_every=1,
        **options)
    cfg.train_cfg = dict(type='EpochBasedTrainLoop', max_epochs=3)
    cfg.train_dataloader.dataset.ann_file = str(ann)
    cfg.default_hooks.checkpoint.by_epoch = True
    cfg.custom_hooks = [dict(type='NonFiniteLossHook', policy='raise')]
    return cfg


def test_epoch_seeds_differ_per_epoch_rank_and_worker():
    seeds = {
        epoch_seed(0, e, r, w)
        for e in range(3)
        for r in range(2)
        for w in (MAIN_PROCESS, 0, 1)
    }
    assert len(seeds) == 18
    assert epoch_seed(0, 1, 0, 0) == epoch_seed(0, 1, 0, 0)


def test_epoch_loop_resume_continues_exactly(tmp_path, imagenette_root):
    lines = open(f'{imagenette_root}/train.txt').read().split('\n')
    ann = tmp_path / 'train8.txt'
    ann.write_text('\n'.join(lines[::len(lines) // 8][:8]) + '\n')
    full, _ = run(_epoch_cfg(tmp_path / 'full', imagenette_root, ann))
    assert sorted(full) == [1, 2, 3, 4, 5, 6]
    crashed, _ = run(
        _epoch_cfg(tmp_path / 'crash', imagenette_root, ann), crash_after=3)
    assert (tmp_path / 'crash' / 'epoch_1.pth').exists()
    resumed, _ = run(
        _epoch_cfg(tmp_path / 'crash', imagenette_root, ann, resume=True))
    assert sorted(resumed) == [3, 4, 5, 6]  # from the end of epoch 1
    for it in resumed:
        for key, value in full[it].items():
            assert resumed[it][key] == pytest.approx(value, rel=1e-5), \
                (it, key)
