"""Curves: TensorBoard and W&B (offline) backends switched on by config.

The demo config runs a few iterations with the backends of
docs/monitoring.md ("Curves in TensorBoard and Weights & Biases") and the
logged losses and monitor scalars are read back. The ``tensorboard`` and
``wandb`` packages are pinned in requirements/tests.txt.
"""
import glob
import json
import os.path as osp

import pytest
from runner_utils import demo_cfg, run

TENSORBOARD = [
    dict(type='LocalVisBackend'),
    dict(type='TensorboardVisBackend')
]


def _scalars_json(runner):
    path = osp.join(runner.log_dir, 'vis_data', 'scalars.json')
    with open(path) as f:
        return [json.loads(line) for line in f]


def test_tensorboard_event_file_has_losses_and_monitors(
        tmp_path, imagenette_root):
    from tensorboard.backend.event_processing.event_accumulator import \
        EventAccumulator
    cfg = demo_cfg(tmp_path, imagenette_root, max_iters=4, ckpt_every=4)
    cfg.visualizer.vis_backends = TENSORBOARD
    knn = next(h for h in cfg.custom_hooks if h['type'] == 'KNNMonitorHook')
    knn['interval'] = 2
    _, runner = run(cfg)
    events = glob.glob(
        osp.join(runner.log_dir, 'vis_data', '**', 'events.out.tfevents.*'),
        recursive=True)
    assert len(events) == 1, events
    acc = EventAccumulator(events[0])
    acc.Reload()
    tags = set(acc.Tags()['scalars'])
    wanted = {
        'loss', 'loss_freq', 'loss_distill', 'teacher_entropy',
        'teacher_marginal_entropy', 'knn/teacher_top1', 'knn/student_top1',
        'lr'
    }
    assert wanted <= tags, wanted - tags
    # the same numbers as the local backend's scalars.json, at the same steps
    local = _scalars_json(runner)
    for tag in ('loss_distill', 'teacher_entropy', 'knn/teacher_top1'):
        ref = [(r['step'], r[tag]) for r in local if tag in r]
        got = [(e.step, e.value) for e in acc.Scalars(tag)]
        assert [s for s, _ in got] == [s for s, _ in ref]
        for (_, a), (_, b) in zip(got, ref):
            assert a == pytest.approx(b, rel=1e-5)
    assert [e.step for e in acc.Scalars('knn/teacher_top1')] == [2, 4]


def test_wandb_offline_run_is_written(tmp_path, imagenette_root, monkeypatch):
    monkeypatch.setenv('WANDB_MODE', 'offline')
    monkeypatch.setenv('WANDB_DIR', str(tmp_path))
    cfg = demo_cfg(tmp_path, imagenette_root, max_iters=2, ckpt_every=2)
    cfg.visualizer.vis_backends = [
        dict(type='LocalVisBackend'),
        dict(
            type='WandbVisBackend',
            init_kwargs=dict(project='folk', mode='offline'))
    ]
    _, runner = run(cfg)
    runs = glob.glob(
        osp.join(str(tmp_path), '**', 'offline-run-*', '*.wandb'),
        recursive=True)
    assert len(runs) == 1, runs
    assert osp.getsize(runs[0]) > 0
