"""Shared pieces of the Imagenette study: presets, variants, data, I/O.

The study's scripts (``pretrain.py``, ``knn.py``, ``linear.py``,
``finetune.py``, ``segment.py``, ``run_study.py``) import this module. It
holds no part of the method: the models, the views, the filters and the
monitors come from the ``folk`` package and MMPretrain / MMSegmentation.

Data: Imagenette from ``imagenette64.zip`` (read with :mod:`zipfile`, not
extracted) or the ``imagenette128`` folder, CamVid from ``camvid240.zip`` or
the ``camvid`` folder. Images are decoded once into uint8 BGR arrays (the
channel order of MMCV's ``LoadImageFromFile``, so the configs' pipelines
and ``to_rgb`` preprocessors apply unchanged) and served by
:class:`ArrayDataset`, an MMPretrain dataset whose samples already hold
``img``.
"""
import ast
import io
import json
import math
import os
import os.path as osp
import platform
import time
import zipfile
from concurrent.futures import ThreadPoolExecutor
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch
from mmengine.dataset import BaseDataset
from mmpretrain.registry import DATASETS

import folk  # noqa: F401  (compat fixes + registration)

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))

MEAN = [123.675, 116.28, 103.53]  # RGB, 0-255
STD = [58.395, 57.12, 57.375]
NUM_CLASSES = 10
SEG_CLASSES = 11
IGNORE = 255
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
METRICS = ('knn', 'linear', 'ft10', 'ft100', 'miou')
METRIC_NAMES = dict(
    knn='k-NN',
    linear='linear',
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

_T0 = time.perf_counter()


def log(msg: str) -> None:
    """Print a progress line with the seconds since start."""
    print(f'[{time.perf_counter() - _T0:7.1f}s] {msg}', flush=True)


def rel(path: str) -> str:
    """``path`` relative to the repository (for published files)."""
    return osp.relpath(osp.abspath(path), REPO)


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


# ---------------------------------------------------------------------------
# Data: decoded once into uint8 BGR arrays
# ---------------------------------------------------------------------------
def shared_dir() -> str:
    return os.environ.get('FOLK_SHARED', osp.join(osp.dirname(REPO), 'shared'))


def find_source(arg: Optional[str], names: Sequence[str]) -> str:
    """``arg`` if given, else the first existing candidate path."""
    if arg and arg != 'auto':
        if not osp.exists(arg):
            raise FileNotFoundError(f'data not found: {arg}')
        return arg
    roots = [
        osp.join(REPO, 'data'),
        osp.join(REPO, 'data', 'packs'),
        osp.join(shared_dir(), 'data', 'packs'),
        osp.join(shared_dir(), 'data')
    ]
    tried = []
    for name in names:
        for root in roots:
            path = osp.join(root, name)
            tried.append(path)
            if osp.exists(path):
                return path
    raise FileNotFoundError('no data found; tried:\n  ' + '\n  '.join(tried) +
                            '\n(pass --data / --camvid or set FOLK_SHARED)')


class Source:
    """Read the files of a data set from a ZIP pack or a folder."""

    def __init__(self, path: str, marker: str) -> None:
        self.path = path
        self.zip = None
        if zipfile.is_zipfile(path):
            self.zip = zipfile.ZipFile(path)
            hits = [
                n for n in self.zip.namelist()
                if n == marker or n.endswith('/' + marker)
            ]
            if not hits:
                raise FileNotFoundError(f'{marker} not found in {path}')
            self.prefix = hits[0][:-len(marker)]
        else:
            if not osp.exists(osp.join(path, marker)):
                raise FileNotFoundError(f'{marker} not found in {path}')
            self.prefix = ''

    def read(self, name: str) -> bytes:
        if self.zip is not None:
            return self.zip.read(self.prefix + name)
        with open(osp.join(self.path, name), 'rb') as f:
            return f.read()

    def text(self, name: str) -> List[str]:
        return [
            ln.strip() for ln in self.read(name).decode().splitlines()
            if ln.strip()
        ]


def _decode(data: bytes, size: Tuple[int, int], label: bool) -> np.ndarray:
    from PIL import Image
    img = Image.open(io.BytesIO(data))
    if label:  # label map: nearest neighbour, values kept
        if img.size != size:
            img = img.resize(size, Image.NEAREST)
        return np.asarray(img)
    img = img.convert('RGB')
    if img.size != size:
        img = img.resize(size, Image.BICUBIC)
    return np.ascontiguousarray(np.asarray(img)[..., ::-1])  # BGR


def decode_all(blobs: List[bytes],
               size: Tuple[int, int],
               label: bool = False) -> np.ndarray:
    """Decode images (BGR) or label maps, resized to ``size`` (W, H)."""
    workers = max(1, min(4, os.cpu_count() or 1))
    with ThreadPoolExecutor(workers) as pool:
        arrays = list(pool.map(lambda b: _decode(b, size, label), blobs))
    return np.stack(arrays)


def balanced_subset(labels: np.ndarray,
                    limit: Optional[int],
                    seed: int = 0) -> np.ndarray:
    """Sorted indices of a class-balanced subset of ``limit`` items."""
    if limit is None or limit >= len(labels):
        return np.arange(len(labels))
    rng = np.random.default_rng(seed)
    per = max(1, limit // len(np.unique(labels)))
    out = [
        rng.permutation(np.flatnonzero(labels == c))[:per]
        for c in np.unique(labels)
    ]
    return np.sort(np.concatenate(out))


def load_imagenette(path: str, size: int, train_limit: Optional[int],
                    val_limit: Optional[int]) -> dict:
    """Imagenette train / val as uint8 BGR (N, size, size, 3) + labels."""
    src = Source(path, 'train.txt')
    out = dict(source=path, size=size)
    for split, limit in (('train', train_limit), ('val', val_limit)):
        items = [ln.rsplit(maxsplit=1) for ln in src.text(f'{split}.txt')]
        labels = np.array([int(c) for _, c in items])
        keep = balanced_subset(labels, limit)
        paths = [items[i][0] for i in keep]
        imgs = decode_all([src.read(p) for p in paths], (size, size))
        out[split] = dict(images=imgs, labels=labels[keep], paths=paths)
    return out


def load_camvid(path: str, size: Tuple[int, int], train_limit: Optional[int],
                val_limit: Optional[int]) -> dict:
    """CamVid train / val: uint8 BGR images and label maps (255 ignored)."""
    src = Source(path, 'train.txt')
    out = dict(source=path, size=tuple(size))
    for split, limit in (('train', train_limit), ('val', val_limit)):
        names = src.text(f'{split}.txt')[:limit]
        imgs = decode_all([src.read(f'images/{split}/{n}.jpg') for n in names],
                          tuple(size))
        lbls = decode_all(
            [src.read(f'annotations/{split}/{n}.png') for n in names],
            tuple(size),
            label=True)
        lbls = np.where(lbls < SEG_CLASSES, lbls, IGNORE).astype(np.uint8)
        out[split] = dict(images=imgs, labels=lbls)
    return out


def fewshot_indices(paths: Sequence[str],
                    labels: np.ndarray,
                    ratio: float,
                    seed: int = 0) -> np.ndarray:
    """The 10 % subset of ``tools/make_fewshot_split.py`` (its function)."""
    import importlib.util
    spec = importlib.util.spec_from_file_location(
        'make_fewshot_split', osp.join(REPO, 'tools', 'make_fewshot_split.py'))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    items = [(p, int(c)) for p, c in zip(paths, labels)]
    chosen = set(
        p for p, _ in module.fewshot_subset(items, ratio=ratio, seed=seed))
    return np.array([i for i, p in enumerate(paths) if p in chosen])


_ARRAYS: Dict[str, Tuple[np.ndarray, Optional[np.ndarray]]] = {}


def register_arrays(key: str,
                    images: np.ndarray,
                    labels: Optional[np.ndarray] = None) -> str:
    """Make ``images`` (N, H, W, 3) uint8 BGR available to
    :class:`ArrayDataset` under ``key``; returns ``key``."""
    if images.ndim != 4 or images.shape[-1] != 3 or \
            images.dtype != np.uint8:
        raise ValueError(f'register_arrays({key!r}): need (N, H, W, 3) '
                         f'uint8, got {images.shape} {images.dtype}')
    _ARRAYS[key] = (images, labels)
    return key


@DATASETS.register_module(force=True)
class ArrayDataset(BaseDataset):
    """Decoded images held in memory, served like ``CustomDataset``.

    Every sample has ``img`` (an (H, W, 3) uint8 BGR array, as MMCV's
    ``LoadImageFromFile`` returns), ``img_shape``, ``ori_shape``,
    ``sample_idx`` and, with labels, ``gt_label``: the pipeline starts
    after loading. The arrays are registered with :func:`register_arrays`
    (configs hold the key, not the data).

    Args:
        key (str): Name given to :func:`register_arrays`.
        indices (Sequence[int], optional): Use only these images.
        pipeline (list): Transforms.
    """

    METAINFO = dict(classes=tuple(str(i) for i in range(NUM_CLASSES)))

    def __init__(self,
                 key: str,
                 indices: Optional[Sequence[int]] = None,
                 pipeline: Sequence = (),
                 **kwargs) -> None:
        if key not in _ARRAYS:
            raise KeyError(f'ArrayDataset: no arrays registered as {key!r} '
                           f'(known: {sorted(_ARRAYS)})')
        self.key = key
        self.indices = None if indices is None else [int(i) for i in indices]
        super().__init__(
            ann_file='',
            pipeline=list(pipeline),
            serialize_data=False,
            **kwargs)

    def load_data_list(self) -> List[dict]:
        images, labels = _ARRAYS[self.key]
        idx = range(len(images)) if self.indices is None else self.indices
        out = []
        for i in idx:
            item = dict(img_index=i)
            if labels is not None:
                item['gt_label'] = int(labels[i])
            out.append(item)
        return out

    def get_data_info(self, idx: int) -> dict:
        info = super().get_data_info(idx)
        img = _ARRAYS[self.key][0][info['img_index']]
        info['img'] = img
        info['img_shape'] = info['ori_shape'] = img.shape[:2]
        return info

    def get_gt_labels(self) -> np.ndarray:
        return np.array([d['gt_label'] for d in self.data_list])


def eval_pipeline(img_size: int) -> List[dict]:
    """Resize the short edge to ``img_size / 0.875`` and centre-crop, as
    the configs' evaluation pipelines (224 / 256)."""
    return [
        dict(
            type='ResizeEdge',
            scale=round(img_size / 0.875),
            edge='short',
            backend='pillow',
            interpolation='bicubic'),
        dict(type='CenterCrop', crop_size=img_size),
        dict(type='PackInputs'),
    ]


# ---------------------------------------------------------------------------
# Backbone
# ---------------------------------------------------------------------------
def backbone_cfg(p: dict, **kw) -> dict:
    """MMPretrain ``VisionTransformer`` of the preset."""
    cfg = dict(
        type='VisionTransformer',
        arch=dict(
            embed_dims=p['embed'],
            num_layers=p['layers'],
            num_heads=p['heads'],
            feedforward_channels=p['ffn']),
        img_size=p['img_size'],
        patch_size=p['patch'],
        drop_path_rate=0.0,
        out_type='raw',
        final_norm=True)
    cfg.update(kw)
    return cfg


def random_backbone(p: dict, seed: int) -> Dict[str, torch.Tensor]:
    """Weights of a freshly initialised backbone (seeded)."""
    from mmpretrain.registry import MODELS
    torch.manual_seed(seed)
    vit = MODELS.build(backbone_cfg(p))
    vit.init_weights()
    return {k: t.detach().clone() for k, t in vit.state_dict().items()}


def build_backbone(p: dict, weights: Dict[str, torch.Tensor],
                   device) -> torch.nn.Module:
    """The preset's ViT with ``weights`` loaded strictly, in eval mode."""
    from mmpretrain.registry import MODELS
    vit = MODELS.build(backbone_cfg(p))
    vit.load_state_dict(weights, strict=True)
    vit.to(device)
    vit.eval()  # returns None for MMPretrain's ViT
    return vit


def lr_schedulers(total: int, warmup: int, eta_min: float) -> List[dict]:
    """Per-iteration linear warm-up then cosine to ``eta_min``."""
    warmup = max(1, min(warmup, total))
    out = [
        dict(
            type='LinearLR',
            start_factor=1e-3,
            by_epoch=False,
            begin=0,
            end=warmup)
    ]
    if total > warmup:
        out.append(
            dict(
                type='CosineAnnealingLR',
                T_max=total - warmup,
                eta_min=eta_min,
                by_epoch=False,
                begin=warmup,
                end=total))
    return out


def quiet_logging() -> None:
    """An ERROR-level current MMEngine logger, so that building models
    outside a Runner does not print every parameter's initialisation."""
    from mmengine.logging import MMLogger
    MMLogger.get_instance(f'study_{time.time_ns()}', log_level='ERROR')


def set_threads(threads: Optional[int], device) -> int:
    """CPU threads: ``threads`` or, by default, 1 when other work is
    running (1-min load average + 1 > cores: spinning OpenMP threads were
    then up to 100x slower), else all cores."""
    if device.type == 'cpu':
        if threads is None:
            cores = os.cpu_count() or 1
            load = os.getloadavg()[0] if hasattr(os, 'getloadavg') else 0.
            threads = 1 if load + 1 > cores else cores
        torch.set_num_threads(threads)
    return torch.get_num_threads()


def hardware(device) -> dict:
    info = dict(
        torch=torch.__version__,
        python=platform.python_version(),
        cpu=platform.processor() or platform.machine(),
        cpu_count=os.cpu_count(),
        threads=torch.get_num_threads(),
        device_type=device.type)
    if device.type == 'cuda':
        info['device'] = torch.cuda.get_device_name(device)
        info['cuda'] = torch.version.cuda
    else:
        info['device'] = f'CPU ({info["cpu"]}, {os.cpu_count()} cores)'
    return info


def summarize(values: List[Optional[float]]) -> Optional[dict]:
    """mean / std (ddof 1) / min / max / n of the non-None values."""
    vals = [v for v in values if v is not None]
    if not vals:
        return None
    a = np.array(vals, dtype=float)
    return dict(
        mean=float(a.mean()),
        std=float(a.std(ddof=1)) if len(a) > 1 else 0.0,
        min=float(a.min()),
        max=float(a.max()),
        n=len(a))


def write_json(obj, path: str) -> None:
    """Write ``obj`` atomically (a partial file never replaces a good one)."""
    tmp = path + '.tmp'
    with open(tmp, 'w') as f:
        json.dump(obj, f, indent=1)
    os.replace(tmp, path)


def finite(x) -> bool:
    return isinstance(x, (int, float)) and math.isfinite(x)


class _DropMessages:
    """``logging.Filter`` dropping records that contain any of ``parts``."""

    def __init__(self, parts: Sequence[str]) -> None:
        self.parts = tuple(parts)

    def filter(self, record) -> bool:
        msg = record.getMessage()
        return not any(part in msg for part in self.parts)


def quiet(runner) -> None:
    """Drop the optimizer constructor's line per frozen (EMA teacher)
    parameter from a Runner's log; everything else is kept."""
    runner.logger.addFilter(_DropMessages(['since its requires_grad=False']))
