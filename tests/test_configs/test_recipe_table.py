"""The downstream configs match the recipe table in docs/downstream.md.

The table (one row per config in configs/benchmarks) is the one place that
states each recipe's lr, batch, layer decay, schedule, warm-up,
augmentation and evaluation resize; this test derives the same columns
from the merged configs, so a change of either without the other fails.
"""
import glob
import os.path as osp
import re

import pytest
from mmengine.config import Config

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
DOC = osp.join(REPO, 'docs', 'downstream.md')
HEADER = ('config', 'anchor', 'lr @ batch', 'layer decay', 'schedule',
          'warm-up', 'augmentation', 'eval resize',
          'differs from the anchor, and why')
CHECKED = HEADER[2:8]
CONFIGS = {
    osp.basename(p): p
    for p in glob.glob(
        osp.join(REPO, 'configs', 'benchmarks', '**', '*.py'), recursive=True)
}


def read_table(path=DOC):
    """Rows of the recipe table as dicts keyed by :data:`HEADER`."""
    lines = open(path, encoding='utf-8').read().splitlines()
    head = '| ' + ' | '.join(HEADER) + ' |'
    if head not in lines:
        raise AssertionError(f'{path}: no recipe table with header {head}')
    rows = []
    for line in lines[lines.index(head) + 2:]:
        if not line.startswith('|'):
            break
        cells = [c.strip() for c in line.strip().strip('|').split(' | ')]
        assert len(cells) == len(HEADER), f'{path}: bad row {line!r}'
        rows.append(dict(zip(HEADER, cells)))
    return rows


def _num(value) -> str:
    """0.8 -> '0.8', 4e-3 -> '4e-3', 1.25e-4 -> '1.25e-4'."""
    if value == 0 or abs(value) >= 0.01:
        return f'{value:g}'
    mantissa, exponent = f'{value:e}'.split('e')
    return f'{float(mantissa):g}e{int(exponent)}'


def _gpus_and_batch(name):
    match = re.search(r'_(\d+)xb(\d+)', name)
    assert match, f'{name}: no NxbM in the name'
    return int(match.group(1)), int(match.group(2))


def _interp(step):
    return step.get('interpolation', 'bilinear')


def _augmentation(cfg):
    words = []
    for step in cfg.train_dataloader.dataset.pipeline:
        kind = step['type']
        if kind == 'RandomResizedCrop':
            words.append(f'RRC {_interp(step)}')
        elif kind == 'RandomFlip':
            words.append('flip')
        elif kind == 'RandAugment':
            words.append(f'RandAugment m{step["magnitude_level"]}')
        elif kind == 'RandomErasing':
            words.append(f'erasing {_num(step["erase_prob"])}')
        elif kind == 'RandomResize':
            low, high = step['ratio_range']
            words.append(f'scale {_num(low)}-{_num(high)}')
        elif kind == 'RandomCrop':
            words.append('crop {}x{}'.format(*step['crop_size']))
        elif kind == 'PhotoMetricDistortion':
            words.append('photometric')
    model = cfg.model
    for aug in (model.get('train_cfg') or {}).get('augments', []) or []:
        words.append(f'{aug["type"]} {_num(aug["alpha"])}')
    head = model.get('head') or {}
    loss = head.get('loss') or {}
    if loss.get('type') == 'LabelSmoothLoss':
        words.append(f'smoothing {_num(loss["label_smooth_val"])}')
    if loss.get('use_sigmoid'):
        words.append('BCE')
    return ', '.join(words)


def _eval_resize(cfg):
    pipeline = cfg.test_dataloader.dataset.pipeline
    if cfg.default_scope == 'mmseg':
        resize = next(s for s in pipeline if s['type'] == 'Resize')
        test = cfg.model.test_cfg
        out = '{}x{}'.format(*resize['scale'])
        if test.get('mode') == 'slide':
            out += ', slide {}/{}'.format(test.crop_size[0], test.stride[0])
        return out
    resize = next(s for s in pipeline if s['type'] == 'ResizeEdge')
    crop = next(s for s in pipeline if s['type'] == 'CenterCrop')
    return f'{_interp(resize)} {resize["scale"]}, crop {crop["crop_size"]}'


def _schedule(train_cfg):
    if 'max_epochs' in train_cfg:
        return f'{train_cfg["max_epochs"]} ep'
    return f'{train_cfg["max_iters"]} it'


def _warmup(schedulers):
    first = schedulers[0]
    if first['type'] != 'LinearLR':
        return '-'
    unit = 'ep' if first.get('by_epoch', True) else 'it'
    return f'{first["end"] - first.get("begin", 0)} {unit}'


def describe(cfg, name):
    """The checked columns of the recipe table, derived from ``cfg``."""
    gpus, per_gpu = _gpus_and_batch(name)
    assert cfg.train_dataloader.batch_size == per_gpu, name
    paramwise = cfg.optim_wrapper.get('paramwise_cfg') or {}
    decay = paramwise.get('layer_decay_rate')
    return {
        'lr @ batch':
        f'{_num(cfg.optim_wrapper.optimizer.lr)} @ {gpus * per_gpu}',
        'layer decay': '-' if decay is None else _num(decay),
        'schedule': _schedule(cfg.train_cfg),
        'warm-up': _warmup(cfg.param_scheduler),
        'augmentation': _augmentation(cfg),
        'eval resize': _eval_resize(cfg),
    }


ROWS = read_table()


def test_one_row_per_config():
    names = [row['config'].strip('`') for row in ROWS]
    assert sorted(names) == sorted(CONFIGS)
    for row in ROWS:
        assert row['anchor'] and row['anchor'] != '-', row['config']
        assert row[HEADER[-1]], row['config']


@pytest.mark.parametrize(
    'row', ROWS, ids=[row['config'].strip('`') for row in ROWS])
def test_config_matches_table(row):
    name = row['config'].strip('`')
    cfg = Config.fromfile(CONFIGS[name])
    assert describe(cfg, name) == {key: row[key] for key in CHECKED}
