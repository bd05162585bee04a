"""The pre-training lr follows the total batch (``auto_scale_lr``).

The configs' lr is meant for 8 GPUs x 128 = 1024 images; MMEngine's Runner
scales it by the real total batch / 1024 when ``auto_scale_lr.enable`` is
true, and ``tools/train.py`` logs the result.
"""
import importlib.util
import os.path as osp

import pytest
from mmengine.config import Config
from runner_utils import REPO, demo_cfg, run


def _train_script():
    spec = importlib.util.spec_from_file_location(
        'folk_tools_train', osp.join(REPO, 'tools', 'train.py'))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class _Logger:

    def __init__(self):
        self.lines = []

    def info(self, msg):
        self.lines.append(('info', msg))

    def warning(self, msg):
        self.lines.append(('warning', msg))


def test_one_process_run_scales_lr_by_batch_over_1024(tmp_path,
                                                      imagenette_root):
    headline = Config.fromfile(osp.join(REPO, 'configs', 'folk_vit-b.py'))
    assert headline.auto_scale_lr == dict(enable=True, base_batch_size=1024)
    cfg = demo_cfg(
        tmp_path, imagenette_root, max_iters=1, batch_size=8, ckpt_every=1)
    cfg.auto_scale_lr = headline.auto_scale_lr  # demo: no schedule base
    lr = cfg.optim_wrapper.optimizer.lr
    _, runner = run(cfg)
    expected = lr * 8 / 1024  # 1 process x 8 images
    groups = runner.optim_wrapper.optimizer.param_groups
    assert len(groups) > 1  # paramwise_cfg: every group is scaled
    for group in groups:
        assert group['initial_lr'] == pytest.approx(expected)

    logger = _Logger()
    _train_script().log_lr_scaling(cfg, runner.world_size, logger)
    (level, msg), = logger.lines
    assert level == 'info'
    assert msg.endswith(f'= {expected:g}') and 'total batch 8' in msg


def test_disabled_scaling_with_another_total_batch_is_warned():
    cfg = Config.fromfile(osp.join(REPO, 'configs', 'folk_vit-b.py'))
    cfg.auto_scale_lr.enable = False
    logger = _Logger()
    _train_script().log_lr_scaling(cfg, 1, logger)  # 1 GPU x 128
    (level, msg), = logger.lines
    assert level == 'warning' and 'total batch 128' in msg
    assert 'meant for 1024' in msg
    logger = _Logger()
    _train_script().log_lr_scaling(cfg, 8, logger)  # 8 x 128: as meant
    assert logger.lines == []
