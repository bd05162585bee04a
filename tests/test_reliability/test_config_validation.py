"""Misspelt or invalid FOLK options fail at build time, naming the option.

Each case modifies the demo config and builds it as training would:
``MODELS.build`` / ``Runner.from_cfg`` for the model, ``TRANSFORMS.build`` /
``Runner.build_dataloader`` for the pipeline (built before the first
iteration).
"""
import copy
import re

import pytest
from mmengine.config import Config
from mmengine.registry import DefaultScope
from mmengine.runner import Runner
from mmpretrain.registry import MODELS, TRANSFORMS
from runner_utils import DEMO_CFG, demo_cfg


@pytest.fixture(scope='module')
def cfg():
    return Config.fromfile(DEMO_CFG)


def _filter_step(cfg, key='train_pipeline'):
    (step, ) = [t for t in cfg[key] if t['type'] == 'RandomFrequencyFilter']
    return step


MODEL_CASES = {
    # name: (change to cfg.model, expected error type, pattern)
    'misspelt algorithm kwarg':
    (lambda m: m.update(teacher_momentun=0.99), TypeError,
     r"unexpected keyword argument 'teacher_momentun'"),
    'teacher momentum > 1':
    (lambda m: m.update(teacher_momentum=1.5), ValueError,
     r'FOLK: teacher_momentum must be in \(0, 1\), got 1.5'),
    'negative frequency loss weight':
    (lambda m: m.head.loss.update(loss_weight=-1.0), ValueError,
     r'FrequencyLoss: loss_weight must be >= 0, got -1'),
    'negative distill loss weight':
    (lambda m: m.distill_head.loss.update(loss_weight=-0.5), ValueError,
     r'DistillLoss: loss_weight must be >= 0, got -0.5'),
    'misspelt loss option':
    (lambda m: m.distill_head.loss.update(teacher_tmp=0.07), TypeError,
     r"unexpected keyword argument 'teacher_tmp'"),
    'zero temperature': (lambda m: m.distill_head.loss.update(student_temp=0),
                         ValueError, r'DistillLoss: student_temp must be > 0'),
    'centre momentum 1':
    (lambda m: m.distill_head.loss.update(center_momentum=1.0), ValueError,
     r'DistillLoss: center_momentum must be in \[0, 1\)'),
    'projector / loss size mismatch':
    (lambda m: m.projector.update(out_channels=512), ValueError,
     r'projector.out_channels \(512\) must equal '
     r'distill_head.loss.out_dim \(1024\)'),
}


@pytest.mark.parametrize('case', sorted(MODEL_CASES))
def test_model_option_errors(cfg, case):
    change, error, pattern = MODEL_CASES[case]
    model = copy.deepcopy(cfg.model)
    change(model)
    with pytest.raises(error, match=pattern):
        MODELS.build(model)


def test_runner_from_cfg_fails_before_training(tmp_path, imagenette_root):
    cfg = demo_cfg(tmp_path, imagenette_root)
    cfg.model.teacher_momentun = 0.99
    with pytest.raises(TypeError, match='teacher_momentun'):
        Runner.from_cfg(cfg)


PIPELINE_CASES = {
    'ratio above 1':
    (lambda c: _filter_step(c).filters[0].update(ratios=(0.05, 1.5)),
     r'filters\[0\]\.ratios must be a non-empty list of numbers in '
     r'\(0, 1\], got \(0.05, 1.5\)'),
    'ratio 0': (lambda c: _filter_step(c).filters[1].update(ratios=(0.0, )),
                r'filters\[1\]\.ratios must be .* in \(0, 1\]'),
    'unknown filter kind':
    (lambda c: _filter_step(c).filters[0].update(kind='comm'),
     r"filters\[0\]\.kind must be one of .*got 'comm'"),
    'misspelt filter key': (lambda c: _filter_step(c).update(filters=[
        dict(kind='com', ratio=(0.05, ), prob=0.5),
        dict(kind='rcom', ratios=(0.05, ), prob=0.5)
    ]), r"filters\[0\] has unknown key\(s\) \['ratio'\].*"
                            r"did you mean 'ratios'"),
    'probabilities': (lambda c: _filter_step(c).filters[0].update(prob=0.9),
                      r'probabilities of filters must sum to 1, got 1.4'),
    'misspelt transform option':
    (lambda c: c.train_pipeline[1].update(crop_sise=64),
     r"unexpected keyword argument 'crop_sise'"),
    'crop scale': (lambda c: c.train_pipeline[1].update(crop_scale=(0.6, 0.3)),
                   r'FOLKViews: crop_scale must satisfy'),
    'crop size': (lambda c: c.train_pipeline[1].update(crop_size=-64),
                  r'FOLKViews: crop_size must be a positive int, got -64'),
    'load policy':
    (lambda c: c.train_pipeline[0].update(on_error='ignore'),
     r"LoadImageFromFileSafe: on_error must be 'raise' or 'skip'"),
}


@pytest.mark.parametrize('case', sorted(PIPELINE_CASES))
def test_pipeline_option_errors(cfg, case):
    change, pattern = PIPELINE_CASES[case]
    cfg = copy.deepcopy(cfg)
    change(cfg)
    with pytest.raises((ValueError, TypeError)) as err:
        for step in cfg.train_pipeline:
            TRANSFORMS.build(step)
    assert re.search(pattern, str(err.value)), str(err.value)


def test_dataloader_build_fails_before_the_first_iteration(
        tmp_path, imagenette_root):
    cfg = demo_cfg(tmp_path, imagenette_root)
    step = _filter_step(cfg.train_dataloader.dataset, 'pipeline')
    step.filters[0].ratios = (2.0, )
    with DefaultScope.overwrite_default_scope('mmpretrain'), \
            pytest.raises(ValueError, match=r'filters\[0\]\.ratios'):
        Runner.build_dataloader(cfg.train_dataloader)
