"""Resume faults of the fault-injection campaign, through the Runner.

Each test starts from the same crashed run (the demo config, a checkpoint
every iteration, killed after iteration 3 of 4: ``iter_2.pth``,
``iter_3.pth`` and ``last_checkpoint`` on disk), damages the work dir the
way a campaign fault did, and resumes with ``resume=True``
(``--resume auto``) or an explicit path.
"""
import glob
import os
import os.path as osp
import shutil
import zipfile

import pytest
import torch
from mmengine.runner import Runner
from runner_utils import demo_cfg, run

from folk.engine.launch import FinishedRunHook

MAX_ITERS = 4


def _cfg(work_dir, data_root, **options):
    return demo_cfg(
        work_dir,
        data_root,
        max_iters=MAX_ITERS,
        batch_size=4,
        ckpt_every=1,
        **options)


@pytest.fixture(scope='module')
def crashed(tmp_path_factory, imagenette_root):
    work_dir = tmp_path_factory.mktemp('crashed')
    losses, _ = run(_cfg(work_dir, imagenette_root), crash_after=3)
    assert sorted(losses) == [1, 2, 3]
    assert open(work_dir / 'last_checkpoint').read() == \
        str(work_dir / 'iter_3.pth')
    return work_dir


def _copy(crashed, dst):
    """A copy of the crashed run whose pointer names its own files."""
    shutil.copytree(crashed, dst)
    (dst / 'last_checkpoint').write_text(str(dst / 'iter_3.pth'))
    return dst


def _log(work_dir):
    return ''.join(
        open(p).read() for p in glob.glob(osp.join(work_dir, '*', '*.log')))


def _flip_tensor_bytes(path):
    """Write a float32 +inf inside the largest record of a zip checkpoint
    (the archive stays readable; only the CRC check can tell)."""
    with zipfile.ZipFile(path) as archive:
        info = max(archive.infolist(), key=lambda i: i.file_size)
    with open(path, 'rb') as f:
        f.seek(info.header_offset + 26)
        name_len = int.from_bytes(f.read(2), 'little')
        extra_len = int.from_bytes(f.read(2), 'little')
    offset = info.header_offset + 30 + name_len + extra_len + 16
    with open(path, 'r+b') as f:
        f.seek(offset)
        f.write(b'\x00\x00\x80\x7f')


def test_missing_pointer_resumes_the_newest_checkpoint(crashed, tmp_path,
                                                       imagenette_root):
    """Fault 21 (D1): without ``last_checkpoint`` the run started over and
    overwrote the intact checkpoints."""
    work_dir = _copy(crashed, tmp_path / 'wd')
    os.remove(work_dir / 'last_checkpoint')
    before = (work_dir / 'iter_3.pth').read_bytes()
    resumed, _ = run(_cfg(work_dir, imagenette_root, resume=True))
    assert sorted(resumed) == [4]
    assert 'last_checkpoint is missing' in _log(work_dir)
    # iteration 3 was not trained again: its file is the crashed run's
    assert (work_dir / 'iter_3.pth').read_bytes() == before


def test_binary_pointer_falls_back(crashed, tmp_path, imagenette_root):
    """Fault 18 (D10): random bytes in ``last_checkpoint`` gave a bare
    UnicodeDecodeError."""
    work_dir = _copy(crashed, tmp_path / 'wd')
    (work_dir / 'last_checkpoint').write_bytes(bytes(range(128, 256)) * 2)
    resumed, _ = run(_cfg(work_dir, imagenette_root, resume=True))
    assert sorted(resumed) == [4]
    assert 'does not hold a file name' in _log(work_dir)


def test_moved_work_dir_resumes_its_newest_file(crashed, tmp_path,
                                                imagenette_root):
    """Fault 27 (D9): after a move the pointer names the old place; the
    newest file of the moved dir was skipped (or, alone, reported as "no
    intact checkpoint", with advice that starts the run over)."""
    work_dir = _copy(crashed, tmp_path / 'moved')
    os.remove(work_dir / 'iter_2.pth')  # only the newest file kept
    (work_dir / 'last_checkpoint').write_text(
        str(tmp_path / 'old_place' / 'iter_3.pth'))
    resumed, _ = run(_cfg(work_dir, imagenette_root, resume=True))
    assert sorted(resumed) == [4]


def test_newest_file_without_meta_falls_back(crashed, tmp_path,
                                             imagenette_root):
    """Fault 28 (D11): an intact torch file that is not a Runner checkpoint
    gave ``KeyError: 'meta'`` instead of a fallback."""
    work_dir = _copy(crashed, tmp_path / 'wd')
    torch.save({'state_dict': {'x': torch.zeros(3)}}, work_dir / 'iter_3.pth')
    resumed, _ = run(_cfg(work_dir, imagenette_root, resume=True))
    assert sorted(resumed) == [3, 4]
    log = _log(work_dir)
    assert 'iter_3.pth' in log and "not a Runner checkpoint (no 'meta')" in log


def test_explicit_resume_path_is_crc_checked(crashed, tmp_path,
                                             imagenette_root):
    """Fault 25 (D6): ``--resume PATH`` to a file with flipped bytes loaded
    the damaged optimizer state without a word."""
    work_dir = _copy(crashed, tmp_path / 'wd')
    path = str(work_dir / 'iter_3.pth')
    _flip_tensor_bytes(path)
    with pytest.raises(RuntimeError, match='CRC mismatch') as err:
        run(_cfg(work_dir, imagenette_root, resume=True, load_from=path))
    assert path in str(err.value)


def test_resume_of_a_finished_run_says_so(crashed, tmp_path, imagenette_root):
    """Docs run: ``--resume`` of a finished run exited 0 without a word."""
    work_dir = _copy(crashed, tmp_path / 'wd')
    resumed, _ = run(_cfg(work_dir, imagenette_root, resume=True))
    assert sorted(resumed) == [4]
    runner = Runner.from_cfg(_cfg(work_dir, imagenette_root, resume=True))
    runner.register_hook(FinishedRunHook())
    runner.train()
    assert 'this run is already finished: resumed at iteration 4 of ' \
        'train_cfg.max_iters=4' in _log(work_dir)
