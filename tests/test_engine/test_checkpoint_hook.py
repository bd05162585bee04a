"""Atomic checkpoints, delete-after-save and auto-resume fallback."""
import glob
import os
import os.path as osp
import subprocess
import sys

import pytest
import torch
from mmengine.runner import Runner
from runner_utils import demo_cfg, run

from folk.engine import find_resumable_checkpoint, verify_checkpoint
from folk.engine.checkpoint import safe_torch_load


def _truncate(path, keep=0.5):
    data = open(path, 'rb').read()
    with open(path, 'wb') as f:
        f.write(data[:int(len(data) * keep)])


def _log_text(work_dir):
    return ''.join(
        open(p).read() for p in glob.glob(osp.join(work_dir, '*', '*.log')))


# ---------------------------------------------------------------------------
# file-level checks (fast)
# ---------------------------------------------------------------------------
def test_verify_checkpoint_detects_damage(tmp_path):
    good = str(tmp_path / 'good.pth')
    torch.save({'w': torch.arange(5000.)}, good)
    assert verify_checkpoint(good) is None

    trunc = str(tmp_path / 'trunc.pth')
    torch.save({'w': torch.arange(5000.)}, trunc)
    _truncate(trunc)
    assert 'truncated' in verify_checkpoint(trunc)

    flipped = str(tmp_path / 'flipped.pth')
    data = bytearray(open(good, 'rb').read())
    data[len(data) // 2] ^= 0xFF  # inside the tensor data
    open(flipped, 'wb').write(bytes(data))
    # torch.load does not notice, the CRC check does
    assert 'CRC' in verify_checkpoint(flipped)

    empty = tmp_path / 'empty.pth'
    empty.write_bytes(b'')
    assert verify_checkpoint(str(empty)) == 'empty file'
    assert verify_checkpoint(str(tmp_path / 'missing.pth')) == \
        'file not found'


def test_find_resumable_checkpoint_falls_back(tmp_path):
    assert find_resumable_checkpoint(str(tmp_path)) is None  # fresh run
    for it in (1, 2, 3, 4):
        torch.save({
            'meta': {},
            'state_dict': {},
            'it': it
        }, str(tmp_path / f'iter_{it}.pth'))
    pointer = tmp_path / 'last_checkpoint'

    pointer.write_text(str(tmp_path / 'iter_3.pth'))
    assert find_resumable_checkpoint(str(tmp_path)) == \
        str(tmp_path / 'iter_3.pth')

    _truncate(str(tmp_path / 'iter_3.pth'))
    (tmp_path / 'iter_2.pth').write_bytes(b'')
    warnings = []
    # newer files than the pointer's (iter_4) are never picked
    assert find_resumable_checkpoint(str(tmp_path), warnings.append) == \
        str(tmp_path / 'iter_1.pth')
    assert 'iter_3.pth' in warnings[0] and 'truncated' in warnings[0]
    assert 'iter_2.pth' in warnings[1] and 'empty' in warnings[1]

    _truncate(str(tmp_path / 'iter_1.pth'))
    with pytest.raises(RuntimeError, match='no intact checkpoint'):
        find_resumable_checkpoint(str(tmp_path), warnings.append)

    pointer.write_text('')  # pointer itself half-written
    assert find_resumable_checkpoint(str(tmp_path), warnings.append) == \
        str(tmp_path / 'iter_4.pth')


_DISK_FULL = r'''
import resource, signal, sys
import torch
import folk  # noqa: F401
from mmengine.runner.checkpoint import save_checkpoint
path = sys.argv[1]
save_checkpoint({'w': torch.ones(100)}, path)
# simulate a full disk: writes beyond 64 KiB fail with EFBIG
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
resource.setrlimit(resource.RLIMIT_FSIZE, (65536, resource.RLIM_INFINITY))
try:
    save_checkpoint({'w': torch.zeros(1000000)}, path)
except Exception as err:
    print('SAVE FAILED', type(err).__name__)
'''


def test_failed_save_leaves_previous_checkpoint(tmp_path):
    """mmengine's save_checkpoint wrote in place: a failed write truncated
    the file. folk.compat makes it write a temporary file and rename it."""
    script = tmp_path / 'disk_full.py'
    script.write_text(_DISK_FULL)
    path = tmp_path / 'ckpts' / 'iter_1.pth'
    out = subprocess.run(
        [sys.executable, str(script), str(path)],
        capture_output=True,
        text=True,
        timeout=600)
    assert 'SAVE FAILED' in out.stdout, out.stdout + out.stderr
    assert verify_checkpoint(str(path)) is None
    torch.testing.assert_close(
        safe_torch_load(str(path))['w'], torch.ones(100))
    assert os.listdir(tmp_path / 'ckpts') == ['iter_1.pth']  # no temp file


# ---------------------------------------------------------------------------
# through the Runner with the demo config
# ---------------------------------------------------------------------------
def test_failed_save_keeps_previous_checkpoint_max_keep_1(
        tmp_path, imagenette_root, monkeypatch):
    """MMEngine deleted the old checkpoint before writing the new one."""
    import mmengine.runner.runner as runner_mod
    cfg = demo_cfg(
        tmp_path, imagenette_root, max_iters=2, batch_size=4, ckpt_every=1)
    cfg.default_hooks.checkpoint.max_keep_ckpts = 1
    original = runner_mod.save_checkpoint
    calls = []

    def failing_save(checkpoint, filename, *args, **kwargs):
        calls.append(filename)
        if len(calls) == 2:
            raise OSError(28, 'No space left on device')
        return original(checkpoint, filename, *args, **kwargs)

    monkeypatch.setattr(runner_mod, 'save_checkpoint', failing_save)
    runner = Runner.from_cfg(cfg)
    with pytest.raises(OSError, match='No space left'):
        runner.train()
    first = osp.join(tmp_path, 'iter_1.pth')
    assert verify_checkpoint(first) is None
    assert open(osp.join(tmp_path, 'last_checkpoint')).read() == first
    assert find_resumable_checkpoint(str(tmp_path)) == first


def test_auto_resume_skips_truncated_checkpoint(tmp_path, imagenette_root):
    full, _ = run(
        demo_cfg(
            tmp_path, imagenette_root, max_iters=3, batch_size=4,
            ckpt_every=1))
    latest = osp.join(tmp_path, 'iter_3.pth')
    assert open(osp.join(tmp_path, 'last_checkpoint')).read() == latest
    _truncate(latest)
    # a pid above Linux's pid_max: the writer is not running
    stale_tmp = tmp_path / '.iter_3.pth.4194305.0123abcd.tmp'
    stale_tmp.write_bytes(b'partial')

    # an explicit path is never replaced: clear error naming the file
    with pytest.raises(RuntimeError, match='iter_3.pth') as err:
        run(
            demo_cfg(
                tmp_path,
                imagenette_root,
                max_iters=3,
                batch_size=4,
                ckpt_every=1,
                resume=True,
                load_from=latest))
    assert 'cannot load checkpoint' in str(err.value)

    # --resume auto: falls back to iter_2 with a warning, then continues
    # exactly as the uninterrupted run
    resumed, _ = run(
        demo_cfg(
            tmp_path,
            imagenette_root,
            max_iters=3,
            batch_size=4,
            ckpt_every=1,
            resume=True))
    assert sorted(resumed) == [3]
    for key, value in full[3].items():
        assert resumed[3][key] == pytest.approx(value, rel=1e-5), key
    log = _log_text(tmp_path)
    assert f'skipping checkpoint {latest}' in log
    assert 'iter_2.pth' in log
    assert verify_checkpoint(latest) is None  # rewritten, intact
    assert not stale_tmp.exists()
