"""The study's variants and presets.

A variant is a config under ``configs/study/`` (``<name>.py``: the
registered model, its views, filters and loss weights, on the scale and
data of ``configs/study/_base_/``); ``algo`` here only says whether it is
pre-trained (None: random initialisation) and ``label`` names it in the
tables. A preset holds what is the study's own: the data subsets, the
evaluation protocols' sizes, the seeds, and ``scale``, the resizing of the
configs (None: the configs as written, the 2-core CPU scale; see
``pretrain.apply_scale``). ``--set KEY=VALUE`` overrides a preset key,
``--cfg-options`` a key of every pre-training config. The recipe search
that chose the configs' values is tabulated in ``docs/study.md``.
"""
import ast
from typing import Optional, Sequence

VARIANTS = {
    'folk':
    dict(label='FOLK (Com/RCom + distill)', algo='FOLK'),
    'dino':
    dict(label='DINO control (unfiltered student, no freq loss)', algo='FOLK'),
    'folk_nofreqloss':
    dict(
        label='FOLK w/o freq loss (filtered student, distill only)',
        algo='FOLK'),
    'folk_nodistill':
    dict(label='FOLK w/o distill (MFM loss on Com/RCom views)', algo='MFM'),
    'mfm':
    dict(label='MFM (low/high-pass, 1 view)', algo='MFM'),
    'scratch':
    dict(label='No pre-training (random init)', algo=None),
}
#: ``knn`` / ``linear`` read the [CLS] token, ``knn_patch`` /
#: ``linear_patch`` the mean patch token; fine-tuning pools the patch tokens.
METRICS = ('knn', 'knn_patch', 'linear', 'linear_patch', 'ft10', 'ft100',
           'miou')
METRIC_NAMES = dict(
    knn='k-NN [CLS]',
    knn_patch='k-NN patch mean',
    linear='linear [CLS]',
    linear_patch='linear patch mean',
    ft10='ft-10%',
    ft100='ft-100%',
    miou='CamVid mIoU')

_COMMON = dict(
    scale=None,
    knn_k=20,
    knn_every=1,
    knn_bank_per_class=None,
    knn_query_per_class=None,
    linear_lr=1e-3,
    ft_lr=1e-3,
    ft_layer_decay=0.75,
    ft_drop_path=0.0,
    ft_crop_scale=(0.35, 1.0),
    seg_lr=5e-4,
    seg_layer_decay=0.75,
    seg_train_limit=None,
    seg_val_limit=None,
    source_size=64,
    seeds=2,
    seeds_single=1,
    ft_workers=1,
    evals='all')

# Preset keys: ``scale`` (resizing of configs/study, see above), data
# (train_limit / val_limit: class-balanced subsets, None = all; source_size:
# decoding size, the random crops are taken from it), evaluation (knn_*,
# linear_*, ft*_*, seg_*; knn_every: the online k-NN every so many epochs;
# ft_workers: the fine-tuning loader's workers; evals='all' or 'frozen').
# ``seeds``: seeds of FOLK and random init; ``seeds_single``: of the
# other variants.
PRESETS = {
    'gpu':
    dict(
        _COMMON,
        scale=dict(
            img_size=64,
            embed=192,
            layers=6,
            heads=3,
            ffn=768,
            epochs=20,
            batch=256,
            lr=5e-4,
            proj_hidden=1024,
            proj_bottleneck=128,
            out_dim=1024,
            teacher_temp=0.04,
            num_workers=4),
        train_limit=None,
        val_limit=None,
        eval_batch=512,
        linear_epochs=60,
        linear_batch=512,
        ft100_epochs=8,
        ft10_epochs=30,
        ft_batch=256,
        seg_size=(192, 144),
        seg_crop=128,
        seg_iters=400,
        seg_batch=16,
        seg_channels=128,
        ft_workers=4),
    # the configs as written: 2 CPU cores
    'cpu':
    dict(
        _COMMON,
        train_limit=None,
        val_limit=1000,
        eval_batch=256,
        linear_epochs=30,
        linear_batch=256,
        ft100_epochs=1,
        # 30 epochs = 450 iterations on the 946 images of the 10 % split:
        # random init reached 37.5 after 10 epochs and 48.2 after 30
        # (docs/study.md); 10 stopped far from convergence
        ft10_epochs=30,
        ft_batch=64,
        seg_size=(96, 72),
        seg_crop=64,
        seg_iters=80,
        seg_batch=8,
        seg_channels=32),
    'smoke':
    dict(
        _COMMON,
        scale=dict(
            embed=32,
            ffn=64,
            epochs=2,
            batch=16,
            lr=1e-3,
            teacher_momentum=0.98,
            proj_hidden=64,
            proj_bottleneck=16,
            out_dim=64,
            teacher_temp=0.04,
            num_workers=0,
            log_every=1,
            monitor_bank_per_class=None),
        train_limit=80,
        val_limit=40,
        eval_batch=64,
        linear_epochs=2,
        linear_batch=32,
        ft100_epochs=1,
        ft10_epochs=1,
        ft_batch=16,
        seg_size=(64, 48),
        seg_crop=48,
        seg_iters=2,
        seg_batch=2,
        seg_channels=16,
        seg_train_limit=8,
        seg_val_limit=4,
        source_size=48,
        ft_workers=0),
}


def parse_set(items: Sequence[str]) -> dict:
    """``['epochs=5', 'lr=1e-3']`` -> ``{'epochs': 5, 'lr': 0.001}``."""
    out = {}
    for item in items:
        key, sep, value = item.partition('=')
        if not sep:
            raise ValueError(f'--set expects KEY=VALUE, got {item!r}')
        try:
            out[key] = ast.literal_eval(value)
        except (ValueError, SyntaxError):
            out[key] = value
    return out


#: Keys of a preset's ``scale`` (``study_configs.apply_scale``); ``--set``
#: accepts them too (``--set epochs=10`` shortens every variant's schedule).
SCALE_KEYS = ('img_size', 'embed', 'layers', 'heads', 'ffn', 'epochs', 'batch',
              'lr', 'num_workers', 'log_every', 'proj_hidden',
              'proj_bottleneck', 'out_dim', 'teacher_temp', 'teacher_momentum',
              'monitor_bank_per_class')


def make_preset(name: str, overrides: Optional[dict] = None) -> dict:
    """A copy of preset ``name`` with ``overrides``; unknown keys raise.

    Overrides of :data:`SCALE_KEYS` go into the preset's ``scale``.
    """
    if name not in PRESETS:
        raise ValueError(f'unknown preset {name!r}; choose from '
                         f'{sorted(PRESETS)}')
    p = dict(PRESETS[name])
    overrides = dict(overrides or {})
    scale = {k: overrides.pop(k) for k in list(overrides) if k in SCALE_KEYS}
    unknown = sorted(set(overrides) - set(p))
    if unknown:
        raise ValueError(f'unknown preset keys {unknown}; known: '
                         f'{sorted(p)} and the scale keys {list(SCALE_KEYS)}')
    p.update(overrides)
    if scale:
        p['scale'] = dict(p['scale'] or {}, **scale)
    return p
