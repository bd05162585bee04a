"""A run killed with SIGKILL resumes (``--resume auto``) exactly.

Real ``tools/train.py`` processes: an uninterrupted run and a run killed
with SIGKILL as soon as a checkpoint appears (mid-way through the following
iteration or save), then restarted with ``--resume auto``. The losses of
every iteration after the resume point must equal those of the
uninterrupted run. Two loops: the demo's iteration loop (no workers), and
the epoch loop of the shipped pre-training configs with two persistent
DataLoader workers, where the recorded data draws (images, crops,
frequency filters) must be equal too.
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
HERE = osp.dirname(osp.abspath(__file__))


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
        # the demo's k-NN monitor (custom_hooks.1) on the same data, one
        # image per class (its config path is relative to the checkout)
        f'custom_hooks.1.bank.data_root={data_root}',
        f'custom_hooks.1.query.data_root={data_root}',
        'custom_hooks.1.bank_per_class=1',
        'custom_hooks.1.query_per_class=1',
        f'train_cfg.max_iters={MAX_ITERS}',
        'default_hooks.checkpoint.interval=1',
        'default_hooks.logger.interval=1',
        'log_processor.window_size=1',  # log each iteration's own loss
    ]


def _env(pythonpath=None):
    # same thread count in every process: identical float results
    env = dict(
        os.environ,
        OMP_NUM_THREADS='1',
        MKL_NUM_THREADS='1',
        PYTHONUNBUFFERED='1')
    if pythonpath:
        env['PYTHONPATH'] = os.pathsep.join(
            [pythonpath] + [p for p in [env.get('PYTHONPATH')] if p])
    return env


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


def _kill_when(path, victim):
    deadline = time.time() + 300
    while not path.exists():
        assert victim.poll() is None, 'the run ended before it was killed'
        assert time.time() < deadline, 'no checkpoint within 300 s'
        time.sleep(0.02)
    os.kill(victim.pid, signal.SIGKILL)
    victim.wait()
    assert victim.returncode == -signal.SIGKILL


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


# ---------------------------------------------------------------------------
# the epoch loop of the shipped pre-training configs, with workers
# ---------------------------------------------------------------------------
EPOCHS, PER_EPOCH = 3, 4  # 16 images, batch 4
EPOCH_CFG = """
_base_ = [{demo!r}]
train_dataloader = dict(
    batch_size=4, num_workers=2, persistent_workers=True,
    dataset=dict(data_root={root!r}, ann_file={ann!r}))
train_cfg = dict(_delete_=True, type='EpochBasedTrainLoop',
                 max_epochs={epochs})
param_scheduler = [dict(type='CosineAnnealingLR', T_max={iters},
                        by_epoch=False, begin=0, end={iters})]
default_hooks = dict(
    logger=dict(interval=1),
    checkpoint=dict(by_epoch=True, interval=1, max_keep_ckpts=3))
log_processor = dict(by_epoch=False, window_size=1)
custom_imports = dict(imports=['folk', 'batch_record'],
                      allow_failed_imports=False)
custom_hooks = [dict(type='NonFiniteLossHook', policy='raise'),
                dict(type='RecordBatchHook')]
"""


def _batches(work_dir):
    """{iter: record} of the last run that recorded that iteration."""
    out = {}
    for line in open(osp.join(work_dir, 'batches.jsonl')):
        rec = json.loads(line)
        out[rec['iter']] = rec
    return out


def test_sigkill_epoch_loop_with_workers_matches_uninterrupted(
        tmp_path, imagenette_root):
    lines = open(osp.join(imagenette_root, 'train.txt')).read().split('\n')
    ann = tmp_path / 'train16.txt'
    ann.write_text('\n'.join(lines[::len(lines) // 16][:16]) + '\n')
    cfg = tmp_path / 'epoch_cfg.py'
    cfg.write_text(
        EPOCH_CFG.format(
            demo=DEMO_CFG,
            root=str(imagenette_root),
            ann=str(ann),
            epochs=EPOCHS,
            iters=EPOCHS * PER_EPOCH))

    def cmd(work_dir, resume=False):
        return [
            sys.executable,
            osp.join(REPO, 'tools', 'train.py'),
            str(cfg), '--work-dir',
            str(work_dir)
        ] + (['--resume', 'auto'] if resume else [])

    env = _env(HERE)
    full_dir, crash_dir = tmp_path / 'full', tmp_path / 'crash'
    full = subprocess.Popen(
        cmd(full_dir),
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True)
    victim = subprocess.Popen(
        cmd(crash_dir),
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL)
    _kill_when(crash_dir / 'epoch_1.pth', victim)
    assert not (crash_dir / f'epoch_{EPOCHS}.pth').exists()
    _, err = full.communicate(timeout=600)
    assert full.returncode == 0, err[-3000:]
    resumed = subprocess.run(
        cmd(crash_dir, resume=True),
        env=env,
        capture_output=True,
        text=True,
        timeout=600)
    assert resumed.returncode == 0, resumed.stderr[-3000:]

    total = EPOCHS * PER_EPOCH
    (reference, ) = _losses(full_dir).values()
    assert sorted(reference) == list(range(1, total + 1))
    resumed_run = list(_losses(crash_dir).values())[-1]
    first = min(resumed_run)
    # resumed at an epoch boundary after epoch 1 (or 2)
    assert first in (PER_EPOCH + 1, 2 * PER_EPOCH + 1), sorted(resumed_run)
    assert sorted(resumed_run) == list(range(first, total + 1))
    ref_batches, batches = _batches(full_dir), _batches(crash_dir)
    for it in range(first, total + 1):
        # the same images with the same crop and filter draws
        assert batches[it] == ref_batches[it], it
        for key, value in reference[it].items():
            assert resumed_run[it][key] == pytest.approx(value, rel=1e-5), \
                (it, key)
    # and the draws of the resumed epoch are not the first epoch's again
    assert batches[first]['crop'] != ref_batches[1]['crop']
