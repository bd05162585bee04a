"""A run killed with SIGKILL resumes (``--resume auto``) exactly.

Real ``tools/train.py`` processes: an uninterrupted run and a run killed
with SIGKILL as soon as its third checkpoint appears (mid-way through the
following iteration or save), then restarted with ``--resume auto``. The
losses of every iteration after the resume point must equal those of the
uninterrupted run.
"""
import glob
import json
import os
import os.path as osp
import signal
import subprocess
import sys
import time

import pytest
from runner_utils import DEMO_CFG, REPO

from folk.engine import verify_checkpoint

MAX_ITERS = 6
KILL_AT = 3


def _cmd(work_dir, data_root, resume=False):
    cmd = [
        sys.executable,
        osp.join(REPO, 'tools', 'train.py'), DEMO_CFG, '--work-dir',
        str(work_dir)
    ]
    if resume:
        cmd += ['--resume', 'auto']
    return cmd + [
        '--cfg-options',
        'train_dataloader.batch_size=4',
        'train_dataloader.num_workers=0',
        'train_dataloader.persistent_workers=False',
        f'train_dataloader.dataset.data_root={data_root}',
        f'train_cfg.max_iters={MAX_ITERS}',
        'default_hooks.checkpoint.interval=1',
        'default_hooks.logger.interval=1',
        'log_processor.window_size=1',  # log each iteration's own loss
    ]


def _env():
    # same thread count in every process: identical float results
    return dict(
        os.environ,
        OMP_NUM_THREADS='1',
        MKL_NUM_THREADS='1',
        PYTHONUNBUFFERED='1')


def _losses(work_dir):
    """{run timestamp: {iter: {loss key: value}}} from scalars.json."""
    runs = {}
    for path in sorted(
            glob.glob(osp.join(work_dir, '*', 'vis_data', 'scalars.json'))):
        run = {}
        for line in open(path):
            rec = json.loads(line)
            if 'loss' in rec:
                run[rec['iter']] = {
                    k: v
                    for k, v in rec.items() if k.startswith('loss')
                }
        runs[path] = run
    return runs


def test_sigkill_then_resume_auto_matches_uninterrupted(
        tmp_path, imagenette_root):
    full_dir, crash_dir = tmp_path / 'full', tmp_path / 'crash'
    # the uninterrupted run and the run to be killed run side by side
    full = subprocess.Popen(
        _cmd(full_dir, imagenette_root),
        env=_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True)
    victim = subprocess.Popen(
        _cmd(crash_dir, imagenette_root),
        env=_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL)
    target = crash_dir / f'iter_{KILL_AT}.pth'
    deadline = time.time() + 300
    while not target.exists():
        assert victim.poll() is None, 'the run ended before it was killed'
        assert time.time() < deadline, 'no checkpoint within 300 s'
        time.sleep(0.02)
    os.kill(victim.pid, signal.SIGKILL)
    victim.wait()
    assert victim.returncode == -signal.SIGKILL
    assert not (crash_dir / f'iter_{MAX_ITERS}.pth').exists()
    # whatever was on disk at the kill: every checkpoint file is complete
    for path in glob.glob(str(crash_dir / 'iter_*.pth')):
        assert verify_checkpoint(path) is None, path

    _, err = full.communicate(timeout=600)
    assert full.returncode == 0, err[-3000:]
    resumed = subprocess.run(
        _cmd(crash_dir, imagenette_root, resume=True),
        env=_env(),
        capture_output=True,
        text=True,
        timeout=600)
    assert resumed.returncode == 0, resumed.stderr[-3000:]

    (reference, ) = _losses(full_dir).values()
    assert sorted(reference) == list(range(1, MAX_ITERS + 1))
    killed_run, resumed_run = _losses(crash_dir).values()
    # the resumed process starts after a saved iteration, runs to the end
    first = min(resumed_run)
    assert 2 <= first <= KILL_AT + 1, sorted(resumed_run)
    assert sorted(resumed_run) == list(range(first, MAX_ITERS + 1))
    for it in range(first, MAX_ITERS + 1):
        for key, value in reference[it].items():
            assert resumed_run[it][key] == pytest.approx(value, rel=1e-5), \
                (it, key)
    # the killed process agreed with the reference before it died too
    for it, values in killed_run.items():
        assert values['loss'] == pytest.approx(reference[it]['loss'], rel=1e-5)
