"""The study's presets (scale, schedule, evaluation sizes) and variants.

A preset is a flat dict of the keys every script reads (``--set KEY=VALUE``
overrides one); a variant names the registered algorithm, its filter set,
its views and the weight of its frequency loss. The recipe search that
chose the values of the ``cpu`` preset is tabulated in ``docs/study.md``.
"""
import ast
from typing import Optional, Sequence

FOLK_RATIOS = (0.005, 0.01, 0.05)

#: The study's variants. ``algo``: the registered model (None: no
#: pre-training); ``filters``: ``com`` (FOLK's Com / RCom), ``radial``
#: (MFM's low / high-pass, radius scaled with ``folk.frequency.mfm_radius``)
#: or ``keep`` (Com at ratio 1.0: the filtered view is the view, so nothing
#: is masked and the frequency loss has no frequency to score);
#: ``freq_weight``: weight of the frequency loss (for ``FOLK`` variants
#: multiplied by the preset's ``freq_loss_weight``, the weight relative to
#: the distillation loss; ``MFM`` variants have no other loss).
VARIANTS = {
    'folk':
    dict(
        label='FOLK (Com/RCom + distill)',
        algo='FOLK',
        filters='com',
        views=2,
        photometric=True,
        crop_scale=(0.25, 1.0),
        freq_weight=1.0),
    'dino':
    dict(
        label='DINO control (unfiltered student, no freq loss)',
        algo='FOLK',
        filters='keep',
        views=2,
        photometric=True,
        crop_scale=(0.25, 1.0),
        freq_weight=0.0),
    'folk_nofreqloss':
    dict(
        label='FOLK w/o freq loss (filtered student, distill only)',
        algo='FOLK',
        filters='com',
        views=2,
        photometric=True,
        crop_scale=(0.25, 1.0),
        freq_weight=0.0),
    'folk_nodistill':
    dict(
        label='FOLK w/o distill (MFM loss on Com/RCom views)',
        algo='MFM',
        filters='com',
        views=2,
        photometric=True,
        crop_scale=(0.25, 1.0),
        freq_weight=1.0),
    'mfm':
    dict(
        label='MFM (low/high-pass, 1 view)',
        algo='MFM',
        filters='radial',
        views=1,
        photometric=False,
        crop_scale=(0.2, 1.0),
        freq_weight=1.0),
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
    patch=8,
    heads=3,
    min_lr=1e-5,
    warmup_frac=0.1,
    weight_decay=0.05,
    clip_grad=3.0,
    teacher_momentum=0.996,
    teacher_momentum_end=1.0,
    teacher_temp=0.04,
    warmup_teacher_temp=0.04,
    temp_warmup_frac=0.1,
    student_temp=0.1,
    ratios=FOLK_RATIOS,
    freq_loss_weight=1.0,
    photometric=True,
    freeze_last_layer=0.,
    knn_k=20,
    knn_every=1,
    knn_bank_per_class=None,
    knn_query_per_class=None,
    monitor_bank_per_class=300,
    monitor_query_per_class=None,
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
    log_every=20,
    evals='all',
    blur_scale=True)

# Preset keys: backbone (img_size, patch, embed, layers, heads, ffn),
# pre-training (epochs, batch, lr, warm-up, teacher momentum /
# temperatures, projector; ``freq_loss_weight``: the frequency loss's
# weight beside the distillation loss in FOLK-type variants;
# ``photometric=False`` drops the photometric augmentation of the
# variants that have it; ``freeze_last_layer``: epochs without prototype
# updates, DINO's stabiliser), data (train_limit / val_limit: class-balanced
# subsets, None = all; source_size: decoding size, the random crops are
# taken from it), evaluation (knn_*, linear_*, ft*_*, seg_*; monitor_*: the
# online k-NN curve every ``knn_every`` epochs on a smaller bank). ``seeds``:
# seeds of FOLK and random init; ``seeds_single``: of the other variants.
PRESETS = {
    'gpu':
    dict(
        _COMMON,
        img_size=64,
        embed=192,
        layers=6,
        ffn=768,
        epochs=20,
        batch=256,
        lr=5e-4,
        teacher_momentum=0.996,
        proj_hidden=1024,
        proj_bottleneck=128,
        out_dim=1024,
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
        source_size=64,
        seeds=2,
        seeds_single=1,
        log_every=20,
        num_workers=4),
    'cpu':
    dict(
        _COMMON,
        # 32 px with patch 8 (16 tokens; session-7 search, docs/study.md):
        # an epoch takes half the time of 48 px (36 tokens), and 12 epochs
        # (4.7 min) reached k-NN +5.1 / linear +8.0 over the random init of
        # the same network; the 48 px study (10 epochs, 8.4 min): +3.2 / +3.2
        img_size=32,
        # 64-d (2 heads of 32) instead of 96-d (session-6 search,
        # docs/study.md): about as good at random init, but FOLK's k-NN
        # after 7 epochs was 34.2 instead of 31.6, and an epoch takes 0.77x
        # the time, which pays for 10 epochs instead of 7
        embed=64,
        heads=2,
        layers=4,
        ffn=256,
        # the time 32 px saves pays for 20 epochs (10 at 48 px in session 6)
        epochs=20,
        batch=64,
        # 3-epoch search (docs/study.md): 1.5e-4 gave the best teacher k-NN
        # and linear probe of the single changes tried (31.3 / 34.9); a
        # smaller batch (more steps) and a faster teacher ended lower
        lr=1.5e-4,
        teacher_momentum=0.996,
        # sharper teacher: the 3-epoch search (docs/study.md) kept it further
        # from uniform than 0.04 and ended higher in k-NN
        teacher_temp=0.02,
        warmup_teacher_temp=0.02,
        proj_hidden=256,
        proj_bottleneck=64,
        out_dim=256,
        train_limit=None,
        val_limit=1000,
        eval_batch=256,
        linear_epochs=30,
        linear_batch=256,
        ft100_epochs=1,
        # 30 epochs = 450 iterations on the 946 images of the 10 % split; at
        # 10 (150 iterations) random init reached 37.5 and 30 epochs 48.2
        # (session-6 search, docs/study.md): 10 epochs stopped far from
        # convergence
        ft10_epochs=30,
        ft_batch=64,
        seg_size=(96, 72),
        seg_crop=64,
        seg_iters=80,
        seg_batch=8,
        seg_channels=32,
        source_size=64,
        seeds=2,
        seeds_single=1,
        log_every=20,
        num_workers=1),
    'smoke':
    dict(
        _COMMON,
        img_size=32,
        embed=32,
        layers=4,
        heads=2,
        ffn=64,
        epochs=2,
        batch=16,
        lr=1e-3,
        teacher_momentum=0.98,
        proj_hidden=64,
        proj_bottleneck=16,
        out_dim=64,
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
        seeds=2,
        seeds_single=1,
        log_every=1,
        num_workers=0),
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


def make_preset(name: str, overrides: Optional[dict] = None) -> dict:
    """A copy of preset ``name`` with ``overrides``; unknown keys raise."""
    if name not in PRESETS:
        raise ValueError(f'unknown preset {name!r}; choose from '
                         f'{sorted(PRESETS)}')
    p = dict(PRESETS[name])
    overrides = overrides or {}
    unknown = sorted(set(overrides) - set(p))
    if unknown:
        raise ValueError(f'unknown preset keys {unknown}; known: {sorted(p)}')
    p.update(overrides)
    if p['img_size'] % p['patch']:
        raise ValueError(f'img_size ({p["img_size"]}) must be a multiple of '
                         f'patch ({p["patch"]})')
    return p
