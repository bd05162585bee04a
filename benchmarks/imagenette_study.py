"""Small-scale reproduction of FOLK's claims on Imagenette and CamVid.

Five variants share one backbone, resolution, schedule, batch size and seed:

==================  =========================================================
``folk``            FOLK: Com / RCom filters, two views with photometric
                    augmentation, cross-view self-distillation (EMA teacher).
``folk_nodistill``  FOLK without distillation: the MFM algorithm (frequency
                    loss only) on FOLK's two Com / RCom filtered views.
``folk_mfmfilters`` FOLK with MFM's low / high-pass filters (radius scaled to
                    the resolution with ``folk.frequency.mfm_radius``), the
                    only change is the filter set.
``mfm``             MFM: low / high-pass, one view, crop + flip only.
``scratch``         No pre-training (random initialisation).
==================  =========================================================

Every pre-trained model is built with ``mmpretrain.registry.MODELS`` from a
dict equivalent to the shipped configs and trained through the real path:
a batch as the data loader yields it (a list of uint8 views (B, 3, H, W) and
``DataSample``s whose metainfo holds ``freq_kind`` / ``freq_param``, drawn
like :class:`folk.datasets.RandomFrequencyFilter`) is passed to
``model.train_step(data, optim_wrapper)`` with an mmengine ``OptimWrapper``
(``AmpOptimWrapper``, bf16, on a GPU). The frozen / fine-tuned backbone is
the one ``folk.converters`` exports (the EMA teacher for FOLK, the student
for MFM).

Evaluations (all on the validation splits):

- k-NN: k=20, cosine similarity, DINO's weighted vote (exp(sim / 0.07)) on
  the [CLS] token of the frozen backbone (``knn``; for FOLK variants also of
  the student backbone, ``knn_student``, JSON only);
- linear probe: frozen [CLS] features (computed once), BatchNorm (no affine)
  + linear layer, AdamW, a few epochs (``linear``);
- fine-tuning with 10 % (class-balanced subset, fixed seed 0, the rule of
  ``tools/make_fewshot_split.py``) and 100 % of the training labels:
  mean-pooled patch tokens + linear head, AdamW with layer-wise lr decay,
  label smoothing 0.1, random resized crop + flip (``ft10``, ``ft100``);
- CamVid (11 classes, 255 ignored): MMSeg ``EncoderDecoder`` with MMSeg's
  ``VisionTransformer`` (weights converted with
  ``folk.converters.to_mmseg``), ``Feature2Pyramid`` and ``UPerHead``,
  trained in-process with ``model.train_step`` and the
  ``ViTLayerDecayOptimizerConstructor``; mIoU over the 11 classes from a
  confusion matrix, whole-image inference (``miou``).

Data: Imagenette from ``imagenette64.zip`` (read with :mod:`zipfile`, not
extracted) or the ``imagenette128`` folder; CamVid from ``camvid240.zip`` or
the ``camvid`` folder (train / val). Both are decoded once into uint8
tensors at the working size and kept in memory (on the GPU when there is
one); views are made on the device in batch.

Simplified with respect to the data pipeline (``FOLKViews``,
``RandomResizedCrop``, MMSeg's CamVid pipeline):

- random resized crop: scale and log-ratio drawn once, the box clamped to
  the image (torchvision retries 10 times), bilinear ``roi_align`` with
  adaptive sampling instead of PIL bicubic; crops of the stored (already
  resized) image;
- colour jitter (p=0.8; brightness 0.4, contrast 0.4, saturation 0.2,
  hue 0.1) in a fixed order, hue as a rotation of the YIQ chroma plane
  (torchvision: random order, HSV hue); grayscale p=0.2; Gaussian blur
  (p=1.0 / 0.1) with sigma 0.1-2.0 scaled by size / 224, as the MFM radius;
  solarise (p=0 / 0.2, threshold 128);
- fine-tuning: no RandAugment / mixup / cutmix / random erasing / drop
  path schedule; linear probe on cached features without augmentation;
- CamVid: one random scale (0.75-1.5) per batch, random crop and flip (no
  photometric distortion, no auxiliary FCN head, no slide inference);
- images are RGB, so ``to_rgb`` / ``bgr_to_rgb`` are off (the configs load
  BGR with OpenCV and convert in the preprocessor);
- k-NN / linear / fine-tuning use the stored images at the working size
  (no resize + centre crop); the cpu / smoke presets use class-balanced
  subsets of the train and val splits (``train_limit`` / ``val_limit``);
- short schedules: constant teacher temperature 0.04 (no warm-up to
  0.07), smaller projector, a few epochs, subsets on CPU (see the
  presets). If ``loss_distill`` climbs to log(out_dim) the distillation
  has collapsed to uniform: lower ``lr`` (``--set lr=3e-4``).

Examples::

    # GPU (H100 / H200), about 8 minutes; copy the packs first
    mkdir -p data && cp ../shared/data/packs/imagenette64.zip \\
        ../shared/data/packs/camvid240.zip data/
    python benchmarks/imagenette_study.py            # --preset gpu
    # 2 CPU cores, 10-15 minutes
    python benchmarks/imagenette_study.py --preset cpu
    # under 2 minutes (the test)
    python benchmarks/imagenette_study.py --preset smoke --out-dir /tmp/s
    # any preset key can be overridden; redraw the table / figure of a run
    python benchmarks/imagenette_study.py --preset cpu --set epochs=8 seeds=2
    python benchmarks/imagenette_study.py \
        --replot benchmarks/results/imagenette_study_gpu.json

Outputs: ``benchmarks/results/imagenette_study_<preset>.{md,json,png}``.
On a CPU, torch runs on one thread by default when other work is running
(``--threads``): with two cores shared, two spinning OpenMP threads were up
to 100 times slower than one.
"""
import argparse
import ast
import copy
import io
import json
import math
import os
import os.path as osp
import platform
import random
import sys
import time
import zipfile
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))


def _rel(path: str) -> str:
    """A data path relative to the repository, for the published JSON."""
    return osp.relpath(path, REPO)
sys.path.insert(0, osp.join(REPO, 'projects'))
import folk  # noqa: E402,F401  (compat fixes + registration)
from folk.converters import extract_backbone, to_mmseg  # noqa: E402
from folk.datasets.transforms import check_filters  # noqa: E402
from folk.frequency import mfm_radius  # noqa: E402
from mmengine.logging import MessageHub, MMLogger  # noqa: E402
from mmengine.optim import (AmpOptimWrapper, OptimWrapper,  # noqa: E402
                            build_optim_wrapper)
from mmpretrain.registry import MODELS  # noqa: E402
from mmpretrain.structures import DataSample  # noqa: E402

MEAN = [123.675, 116.28, 103.53]
STD = [58.395, 57.12, 57.375]
NUM_CLASSES = 10
SEG_CLASSES = 11
IGNORE = 255
FOLK_RATIOS = (0.005, 0.01, 0.05)

VARIANTS = {
    'folk': dict(
        label='FOLK (Com/RCom + distill)', algo='FOLK', filters='com',
        views=2, photometric=True, crop_scale=(0.25, 1.0)),
    'folk_nodistill': dict(
        label='FOLK w/o distill (MFM + Com/RCom)', algo='MFM',
        filters='com', views=2, photometric=True, crop_scale=(0.25, 1.0)),
    'folk_mfmfilters': dict(
        label='FOLK w/ MFM filters (low/high + distill)', algo='FOLK',
        filters='radial', views=2, photometric=True,
        crop_scale=(0.25, 1.0)),
    'mfm': dict(
        label='MFM (low/high-pass, 1 view)', algo='MFM', filters='radial',
        views=1, photometric=False, crop_scale=(0.2, 1.0)),
    'scratch': dict(label='No pre-training (random init)', algo=None),
}
METRICS = ('knn', 'linear', 'ft10', 'ft100', 'miou')
METRIC_NAMES = dict(knn='k-NN', linear='linear', ft10='ft-10%',
                    ft100='ft-100%', miou='CamVid mIoU')

# Preset keys: backbone (img_size, patch, embed, layers, heads, ffn),
# pre-training (epochs, batch, lr, warmup, teacher momentum / temperature,
# projector), data (train_limit / val_limit: class-balanced subsets, None =
# all), evaluation (knn_k, linear_*, ft*_*, seg_*).
# Short-schedule choices (as configs/demo): the teacher temperature is a
# constant 0.04 (the 0.04 -> 0.07 warm-up is longer than these runs) and
# the lr is moderate: on the cpu preset, lr 1e-3 or a 0.98 teacher momentum
# let loss_distill climb to log(out_dim) within ~60 iterations (uniform
# collapse of the distillation); lr 3e-4 with momentum 0.996 did not.
PRESETS = {
    'gpu': dict(
        img_size=64, patch=8, embed=192, layers=6, heads=3, ffn=768,
        epochs=20, batch=256, lr=5e-4, min_lr=1e-5, warmup_frac=0.1,
        weight_decay=0.05, clip_grad=3.0, teacher_momentum=0.996,
        teacher_temp=0.04, warmup_teacher_temp=0.04,
        proj_hidden=1024, proj_bottleneck=128, out_dim=4096,
        train_limit=None, val_limit=None, eval_batch=1024,
        knn_k=20, linear_epochs=60, linear_lr=1e-3, linear_batch=512,
        ft100_epochs=8, ft10_epochs=30, ft_batch=256, ft_lr=1e-3,
        ft_layer_decay=0.75, ft_drop_path=0.1, ft_crop_scale=(0.35, 1.0),
        seg_size=(192, 144), seg_crop=128, seg_iters=400, seg_batch=16,
        seg_lr=5e-4, seg_layer_decay=0.75, seg_channels=128,
        seg_train_limit=None, seg_val_limit=None, seeds=2,
        log_every=20),
    'cpu': dict(
        img_size=48, patch=8, embed=96, layers=4, heads=3, ffn=384,
        epochs=4, batch=64, lr=3e-4, min_lr=1e-5, warmup_frac=0.1,
        weight_decay=0.05, clip_grad=3.0, teacher_momentum=0.996,
        teacher_temp=0.04, warmup_teacher_temp=0.04,
        proj_hidden=256, proj_bottleneck=64, out_dim=1024,
        train_limit=4000, val_limit=1000, eval_batch=256,
        knn_k=20, linear_epochs=30, linear_lr=1e-3, linear_batch=256,
        ft100_epochs=2, ft10_epochs=10, ft_batch=64, ft_lr=1e-3,
        ft_layer_decay=0.75, ft_drop_path=0.0, ft_crop_scale=(0.35, 1.0),
        seg_size=(96, 72), seg_crop=64, seg_iters=80, seg_batch=8,
        seg_lr=5e-4, seg_layer_decay=0.75, seg_channels=32,
        seg_train_limit=None, seg_val_limit=None, seeds=1,
        log_every=10),
    'smoke': dict(
        img_size=32, patch=8, embed=32, layers=4, heads=2, ffn=64,
        epochs=1, batch=32, lr=1e-3, min_lr=1e-5, warmup_frac=0.1,
        weight_decay=0.05, clip_grad=3.0, teacher_momentum=0.98,
        teacher_temp=0.07, warmup_teacher_temp=0.04,
        proj_hidden=64, proj_bottleneck=16, out_dim=64,
        train_limit=200, val_limit=100, eval_batch=128,
        knn_k=20, linear_epochs=3, linear_lr=1e-3, linear_batch=64,
        ft100_epochs=1, ft10_epochs=1, ft_batch=32, ft_lr=1e-3,
        ft_layer_decay=0.75, ft_drop_path=0.0, ft_crop_scale=(0.35, 1.0),
        seg_size=(64, 48), seg_crop=48, seg_iters=3, seg_batch=4,
        seg_lr=5e-4, seg_layer_decay=0.75, seg_channels=16,
        seg_train_limit=16, seg_val_limit=8, seeds=1,
        log_every=4),
}

_T0 = time.perf_counter()


def log(msg: str) -> None:
    print(f'[{time.perf_counter() - _T0:7.1f}s] {msg}', flush=True)


# ---------------------------------------------------------------------------
# Data: decoded once into uint8 tensors
# ---------------------------------------------------------------------------
def shared_dir() -> str:
    return os.environ.get('FOLK_SHARED', osp.join(osp.dirname(REPO),
                                                   'shared'))


def find_source(arg: Optional[str], names: Sequence[str]) -> str:
    """``arg`` if given, else the first existing candidate path."""
    if arg and arg != 'auto':
        if not osp.exists(arg):
            raise FileNotFoundError(f'data not found: {arg}')
        return arg
    roots = [osp.join(REPO, 'data'), osp.join(REPO, 'data', 'packs'),
             osp.join(shared_dir(), 'data', 'packs'),
             osp.join(shared_dir(), 'data')]
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
    """Read files of a data set from a ZIP pack or a folder."""

    def __init__(self, path: str, marker: str) -> None:
        self.path = path
        self.zip = None
        if zipfile.is_zipfile(path):
            self.zip = zipfile.ZipFile(path)
            hits = [n for n in self.zip.namelist()
                    if n == marker or n.endswith('/' + marker)]
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
        return [ln.strip() for ln in self.read(name).decode().splitlines()
                if ln.strip()]


def _decode(data: bytes, size: Tuple[int, int], mode: str) -> np.ndarray:
    from PIL import Image
    img = Image.open(io.BytesIO(data))
    if mode == 'RGB':
        img.draft('RGB', size)  # fast JPEG downscale by 2^k when possible
        img = img.convert('RGB')
        if img.size != size:
            img = img.resize(size, Image.BICUBIC)
    else:  # label map: nearest neighbour, values kept
        if img.size != size:
            img = img.resize(size, Image.NEAREST)
    return np.asarray(img)


def decode_all(blobs: List[bytes], size: Tuple[int, int],
               mode: str = 'RGB') -> np.ndarray:
    workers = max(1, min(8, os.cpu_count() or 1))
    with ThreadPoolExecutor(workers) as pool:
        arrays = list(pool.map(lambda b: _decode(b, size, mode), blobs,
                               chunksize=64))
    return np.stack(arrays)


def balanced_subset(labels: np.ndarray, limit: Optional[int],
                    seed: int = 0) -> np.ndarray:
    """Indices of a class-balanced subset of ``limit`` items (sorted)."""
    if limit is None or limit >= len(labels):
        return np.arange(len(labels))
    rng = np.random.default_rng(seed)
    classes = np.unique(labels)
    per = max(1, limit // len(classes))
    out = []
    for c in classes:
        idx = np.flatnonzero(labels == c)
        out.append(rng.permutation(idx)[:per])
    return np.sort(np.concatenate(out))


def fewshot_indices(paths: Sequence[str], labels: np.ndarray, ratio: float,
                    seed: int = 0) -> np.ndarray:
    """Class-balanced few-shot subset, the rule of make_fewshot_split.py.

    ``round(ratio * N / C)`` images per class; each class's paths sorted
    and shuffled with ``random.Random(f'{seed}-{label}')``.
    """
    by_class = defaultdict(list)
    for i, c in enumerate(labels):
        by_class[int(c)].append(i)
    per = max(1, round(ratio * len(labels) / len(by_class)))
    chosen = []
    for c in sorted(by_class):
        idx = sorted(by_class[c], key=lambda i: paths[i])
        random.Random(f'{seed}-{c}').shuffle(idx)
        chosen += idx[:per]
    return np.array(sorted(chosen))


def load_imagenette(path: str, size: int, train_limit: Optional[int],
                    val_limit: Optional[int]) -> dict:
    src = Source(path, 'train.txt')
    out = dict(source=path, size=size)
    for split, limit in (('train', train_limit), ('val', val_limit)):
        items = [ln.rsplit(maxsplit=1) for ln in src.text(f'{split}.txt')]
        paths = [p for p, _ in items]
        labels = np.array([int(c) for _, c in items])
        keep = balanced_subset(labels, limit)
        paths = [paths[i] for i in keep]
        labels = labels[keep]
        blobs = [src.read(p) for p in paths]
        imgs = decode_all(blobs, (size, size))  # (N, H, W, 3)
        out[split] = dict(
            images=torch.from_numpy(imgs).permute(0, 3, 1, 2).contiguous(),
            labels=torch.from_numpy(labels).long(), paths=paths)
    return out


def load_camvid(path: str, size: Tuple[int, int], train_limit: Optional[int],
                val_limit: Optional[int]) -> dict:
    src = Source(path, 'train.txt')
    out = dict(source=path, size=size)
    for split, limit in (('train', train_limit), ('val', val_limit)):
        names = src.text(f'{split}.txt')[:limit]
        imgs = decode_all([src.read(f'images/{split}/{n}.jpg')
                           for n in names], size)
        lbls = decode_all([src.read(f'annotations/{split}/{n}.png')
                           for n in names], size, mode='L')
        lbls = np.where(lbls < SEG_CLASSES, lbls, IGNORE).astype(np.uint8)
        out[split] = dict(
            images=torch.from_numpy(imgs).permute(0, 3, 1, 2).contiguous(),
            labels=torch.from_numpy(lbls))
    return out


# ---------------------------------------------------------------------------
# Batched views on the device
# ---------------------------------------------------------------------------
def _t(a, device, dtype=torch.float32) -> torch.Tensor:
    return torch.as_tensor(np.asarray(a), dtype=dtype, device=device)


def random_resized_crop(x: torch.Tensor, out: int, scale: Tuple[float, float],
                        rng: np.random.Generator,
                        ratio=(3 / 4, 4 / 3)) -> torch.Tensor:
    """Per-image random resized crop of a float batch with roi_align."""
    from torchvision.ops import roi_align
    b, _, h, w = x.shape
    area = rng.uniform(scale[0], scale[1], b) * h * w
    r = np.exp(rng.uniform(math.log(ratio[0]), math.log(ratio[1]), b))
    cw = np.clip(np.sqrt(area * r), 1, w)
    ch = np.clip(np.sqrt(area / r), 1, h)
    x0 = rng.uniform(0, 1, b) * (w - cw)
    y0 = rng.uniform(0, 1, b) * (h - ch)
    boxes = np.stack([np.arange(b), x0, y0, x0 + cw, y0 + ch], 1)
    return roi_align(x, _t(boxes, x.device), (out, out), spatial_scale=1.0,
                     sampling_ratio=-1, aligned=True)


def random_flip(x: torch.Tensor, rng: np.random.Generator) -> torch.Tensor:
    flip = _t(rng.random(x.shape[0]) < 0.5, x.device, torch.bool)
    return torch.where(flip[:, None, None, None], x.flip(-1), x)


def _gray(x: torch.Tensor) -> torch.Tensor:
    return (0.299 * x[:, 0:1] + 0.587 * x[:, 1:2] + 0.114 * x[:, 2:3])


_YIQ = torch.tensor([[0.299, 0.587, 0.114], [0.596, -0.274, -0.322],
                     [0.211, -0.523, 0.312]])
_YIQ_INV = torch.linalg.inv(_YIQ)


def color_jitter(x: torch.Tensor, rng: np.random.Generator, p: float,
                 brightness=0.4, contrast=0.4, saturation=0.2,
                 hue=0.1) -> torch.Tensor:
    """Batched colour jitter of [0, 1] images, applied with probability p."""
    b = x.shape[0]
    on = rng.random(b) < p
    bf = np.where(on, rng.uniform(1 - brightness, 1 + brightness, b), 1.)
    cf = np.where(on, rng.uniform(1 - contrast, 1 + contrast, b), 1.)
    sf = np.where(on, rng.uniform(1 - saturation, 1 + saturation, b), 1.)
    hf = np.where(on, rng.uniform(-hue, hue, b), 0.)
    dev = x.device
    x = (x * _t(bf, dev)[:, None, None, None]).clamp(0, 1)
    m = _gray(x).mean(dim=(1, 2, 3), keepdim=True)
    x = ((x - m) * _t(cf, dev)[:, None, None, None] + m).clamp(0, 1)
    g = _gray(x)
    x = ((x - g) * _t(sf, dev)[:, None, None, None] + g).clamp(0, 1)
    # hue: rotate the chroma plane (I, Q) of YIQ by 2*pi*h
    theta = 2 * math.pi * _t(hf, dev)
    cos, sin = theta.cos(), theta.sin()
    rot = torch.zeros(b, 3, 3, device=dev)
    rot[:, 0, 0] = 1
    rot[:, 1, 1], rot[:, 1, 2] = cos, -sin
    rot[:, 2, 1], rot[:, 2, 2] = sin, cos
    mat = _YIQ_INV.to(dev) @ rot @ _YIQ.to(dev)  # (B, 3, 3)
    x = torch.einsum('bij,bjhw->bihw', mat, x)
    return x.clamp(0, 1)


def random_grayscale(x: torch.Tensor, rng: np.random.Generator,
                     p: float) -> torch.Tensor:
    on = _t(rng.random(x.shape[0]) < p, x.device, torch.bool)
    return torch.where(on[:, None, None, None], _gray(x).expand_as(x), x)


def gaussian_blur(x: torch.Tensor, rng: np.random.Generator, p: float,
                  sigma: Tuple[float, float]) -> torch.Tensor:
    """Per-image separable Gaussian blur (reflect padding)."""
    b, c, h, w = x.shape
    on = rng.random(b) < p
    if not on.any():
        return x
    sig = np.maximum(rng.uniform(sigma[0], sigma[1], b), 1e-3)
    r = int(min(max(1, math.ceil(3 * sigma[1])), (min(h, w) - 1) // 2))
    k = np.arange(-r, r + 1)
    ker = np.exp(-k[None] ** 2 / (2 * sig[:, None] ** 2))
    ker /= ker.sum(1, keepdims=True)
    ker[~on] = (k == 0)
    ker = _t(np.repeat(ker, c, 0), x.device)  # (B*C, K)
    y = x.reshape(1, b * c, h, w)
    y = F.conv2d(F.pad(y, (r, r, 0, 0), mode='reflect'),
                 ker[:, None, None, :], groups=b * c)
    y = F.conv2d(F.pad(y, (0, 0, r, r), mode='reflect'),
                 ker[:, None, :, None], groups=b * c)
    return y.reshape(b, c, h, w)


def solarize(x: torch.Tensor, rng: np.random.Generator,
             p: float) -> torch.Tensor:
    if p <= 0:
        return x
    on = _t(rng.random(x.shape[0]) < p, x.device, torch.bool)
    return torch.where(on[:, None, None, None] & (x >= 128 / 255), 1 - x, x)


def make_views(imgs: torch.Tensor, num_views: int, size: int,
               crop_scale: Tuple[float, float], photometric: bool,
               rng: np.random.Generator) -> List[torch.Tensor]:
    """``FOLKViews`` on a uint8 batch: a list of uint8 (B, 3, S, S) views."""
    x = imgs.float()
    sigma = (0.1 * size / 224, 2.0 * size / 224)
    views = []
    for v in range(num_views):
        y = random_resized_crop(x, size, crop_scale, rng) / 255.
        y = random_flip(y, rng)
        if photometric:
            y = color_jitter(y, rng, p=0.8)
            y = random_grayscale(y, rng, p=0.2)
            y = gaussian_blur(y, rng, p=1.0 if v == 0 else 0.1, sigma=sigma)
            y = solarize(y, rng, p=0.0 if v == 0 else 0.2)
        views.append((y * 255.).round_().clamp_(0, 255).to(torch.uint8))
    return views


def variant_filters(kind: str, size: int) -> List[dict]:
    if kind == 'com':
        return check_filters([
            dict(kind='com', ratios=FOLK_RATIOS, prob=0.5),
            dict(kind='rcom', ratios=FOLK_RATIOS, prob=0.5)])
    radius = mfm_radius(size)
    return check_filters([dict(kind='lowpass', radius=radius, prob=0.5),
                          dict(kind='highpass', radius=radius, prob=0.5)])


def choose_filters(filters: List[dict], batch: int, num_views: int,
                   rng: np.random.Generator) -> List[DataSample]:
    """``RandomFrequencyFilter._choose`` for a batch: DataSamples."""
    probs = np.array([f['prob'] for f in filters])
    probs = probs / probs.sum()
    which = rng.choice(len(filters), size=(batch, num_views), p=probs)
    pick = rng.random((batch, num_views))
    samples = []
    for i in range(batch):
        kinds, params = [], []
        for v in range(num_views):
            f = filters[which[i, v]]
            if 'ratios' in f:
                param = f['ratios'][int(pick[i, v] * len(f['ratios']))]
            else:
                param = f['radius']
            kinds.append(f['kind'])
            params.append(float(param))
        s = DataSample()
        s.set_metainfo(dict(freq_kind=kinds, freq_param=params))
        samples.append(s)
    return samples


# ---------------------------------------------------------------------------
# Models
# ---------------------------------------------------------------------------
def backbone_cfg(p: dict, **kw) -> dict:
    cfg = dict(
        type='VisionTransformer',
        arch=dict(embed_dims=p['embed'], num_layers=p['layers'],
                  num_heads=p['heads'], feedforward_channels=p['ffn']),
        img_size=p['img_size'], patch_size=p['patch'], drop_path_rate=0.0,
        out_type='raw', final_norm=True)
    cfg.update(kw)
    return cfg


def pretrain_model_cfg(variant: str, p: dict, total_iters: int) -> dict:
    """configs/{mfm,folk} model dicts at the study's scale."""
    v = VARIANTS[variant]
    cfg = dict(
        type=v['algo'],
        backbone=backbone_cfg(p),
        neck=dict(type='SimMIMLinearDecoder', in_channels=p['embed'],
                  encoder_stride=p['patch']),
        head=dict(type='MFMHead',
                  loss=dict(type='FrequencyLoss', loss_weight=1.0)),
        data_preprocessor=dict(type='FrequencyFilterPreprocessor',
                               mean=MEAN, std=STD, to_rgb=False))
    if v['algo'] == 'FOLK':
        cfg.update(
            projector=dict(
                type='DINOProjector', in_channels=p['embed'],
                hidden_channels=p['proj_hidden'],
                bottleneck_channels=p['proj_bottleneck'],
                out_channels=p['out_dim']),
            distill_head=dict(
                type='DistillHead',
                loss=dict(type='DistillLoss', out_dim=p['out_dim'],
                          student_temp=0.1, teacher_temp=p['teacher_temp'],
                          warmup_teacher_temp=p['warmup_teacher_temp'],
                          warmup_iters=max(1, int(0.1 * total_iters)),
                          center_momentum=0.9, loss_weight=1.0)),
            teacher_momentum=p['teacher_momentum'],
            teacher_momentum_end=1.0)
    return cfg


def make_optim_wrapper(optimizer: torch.optim.Optimizer, device,
                       clip: Optional[float]) -> OptimWrapper:
    clip_cfg = dict(max_norm=clip) if clip else None
    if device.type == 'cuda':
        return AmpOptimWrapper(optimizer=optimizer, dtype='bfloat16',
                               loss_scale=1.0, clip_grad=clip_cfg)
    return OptimWrapper(optimizer=optimizer, clip_grad=clip_cfg)


def set_lr(optim_wrapper: OptimWrapper, it: int, total: int, base: float,
           warmup: int, min_lr: float) -> None:
    """Linear warm-up then cosine; per-group ``lr_scale`` respected."""
    if it < warmup:
        lr = base * (it + 1) / warmup
    else:
        t = (it - warmup) / max(1, total - warmup)
        lr = min_lr + (base - min_lr) * 0.5 * (1 + math.cos(math.pi * t))
    for g in optim_wrapper.optimizer.param_groups:
        g['lr'] = lr * g.get('lr_scale', 1.0)


_MISSING = object()


def pretrain(variant: str, p: dict, data: dict, seed: int, device,
             tag: str) -> Tuple[dict, dict]:
    """Pre-train one variant; returns (run record, backbone weights)."""
    n = data['train']['images'].shape[0]
    bs = min(p['batch'], n)
    per_epoch = n // bs
    total = per_epoch * p['epochs']
    torch.manual_seed(seed)
    model = MODELS.build(pretrain_model_cfg(variant, p, total))
    model.init_weights()
    model.to(device)
    model.train()
    ow_type = 'AmpOptimWrapper' if device.type == 'cuda' else 'OptimWrapper'
    ow_cfg = dict(
        type=ow_type,
        optimizer=dict(type='AdamW', lr=p['lr'], betas=(0.9, 0.95),
                       weight_decay=p['weight_decay']),
        clip_grad=dict(max_norm=p['clip_grad']),
        paramwise_cfg=dict(
            norm_decay_mult=0.0, bias_decay_mult=0.0,
            custom_keys={'pos_embed': dict(decay_mult=0.),
                         'cls_token': dict(decay_mult=0.)}))
    if ow_type == 'AmpOptimWrapper':
        ow_cfg.update(dtype='bfloat16', loss_scale=1.0)
    optim_wrapper = build_optim_wrapper(model, ow_cfg)
    # The EMA teacher and the teacher temperature read the schedule from
    # the message hub, as under the Runner; the old values are restored.
    hub = MessageHub.get_current_instance()
    saved = {k: hub.runtime_info.get(k, _MISSING) for k in ('max_iters',
                                                            'iter')}
    hub.update_info('max_iters', total)
    try:
        return _pretrain_loop(model, optim_wrapper, variant, p, data, seed,
                              device, tag, total, per_epoch, bs)
    finally:
        for k, val in saved.items():
            if val is _MISSING:
                hub.runtime_info.pop(k, None)
            else:
                hub.update_info(k, val)


def _pretrain_loop(model, optim_wrapper, variant, p, data, seed, device, tag,
                   total, per_epoch, bs):
    v = VARIANTS[variant]
    train = data['train']['images']
    n = train.shape[0]
    hub = MessageHub.get_current_instance()
    filters = variant_filters(v['filters'], p['img_size'])
    order_rng = np.random.default_rng([seed, 0])
    aug_rng = np.random.default_rng([seed, 1])
    filt_rng = np.random.default_rng([seed, 2])
    warmup = max(1, int(p['warmup_frac'] * total))
    names = ['loss_freq'] + (['loss_distill'] if v['algo'] == 'FOLK' else [])
    curves = {k: [] for k in names}
    pending = []

    def flush():
        if not pending:
            return
        vals = torch.stack(pending).float().cpu().numpy()
        pending.clear()
        if not np.isfinite(vals).all():
            raise RuntimeError(f'{tag}: non-finite loss {vals[-1]}')
        for j, k in enumerate(names):
            curves[k].extend(vals[:, j].tolist())

    if device.type == 'cuda':
        torch.cuda.synchronize()
    start = time.perf_counter()
    it = 0
    for epoch in range(p['epochs']):
        perm = torch.from_numpy(order_rng.permutation(n)).to(device)
        for b in range(per_epoch):
            hub.update_info('iter', it)
            set_lr(optim_wrapper, it, total, p['lr'], warmup, p['min_lr'])
            imgs = train[perm[b * bs:(b + 1) * bs]]
            views = make_views(imgs, v['views'], p['img_size'],
                               v['crop_scale'], v['photometric'], aug_rng)
            samples = choose_filters(filters, bs, v['views'], filt_rng)
            log_vars = model.train_step(
                dict(inputs=views, data_samples=samples), optim_wrapper)
            pending.append(torch.stack([log_vars[k].detach().float()
                                        for k in names]))
            it += 1
            if it % p['log_every'] == 0 or it == total:
                flush()
                el = time.perf_counter() - start
                last = ', '.join(f'{k} {curves[k][-1]:.4f}' for k in names)
                log(f'{tag} pretrain ep {epoch + 1}/{p["epochs"]} it '
                    f'{it}/{total}: {last} ({it * bs / el:.0f} img/s)')
    flush()
    if device.type == 'cuda':
        torch.cuda.synchronize()
    elapsed = time.perf_counter() - start
    tail = max(1, total // 20)
    result = dict(
        pretrain_time_s=elapsed, iters=total, images_seen=total * bs,
        curves=curves,
        final_loss_freq=float(np.mean(curves['loss_freq'][-tail:])),
        final_loss_distill=(float(np.mean(curves['loss_distill'][-tail:]))
                            if 'loss_distill' in curves else None))
    sd = {k: t.detach().cpu() for k, t in model.state_dict().items()}
    weights, report = extract_backbone(sd)
    result['weights'] = report.weights
    backbones = dict(main=weights)
    if v['algo'] == 'FOLK':
        backbones['student'] = extract_backbone(sd, 'student')[0]
    del model, optim_wrapper
    return result, backbones


def random_backbone(p: dict, seed: int) -> Dict[str, torch.Tensor]:
    torch.manual_seed(seed)
    vit = MODELS.build(backbone_cfg(p))
    vit.init_weights()
    return {k: t.detach().clone() for k, t in vit.state_dict().items()}


def build_vit(p: dict, weights: Dict[str, torch.Tensor], device,
              **kw) -> nn.Module:
    vit = MODELS.build(backbone_cfg(p, **kw))
    vit.load_state_dict(weights, strict=True)
    return vit.to(device)


# ---------------------------------------------------------------------------
# Classification evaluations
# ---------------------------------------------------------------------------
def normalize(x_u8: torch.Tensor) -> torch.Tensor:
    mean = torch.tensor(MEAN, device=x_u8.device)[None, :, None, None]
    std = torch.tensor(STD, device=x_u8.device)[None, :, None, None]
    return (x_u8.float() - mean) / std


def autocast(device):
    return torch.autocast(device.type, dtype=torch.bfloat16,
                          enabled=device.type == 'cuda')


@torch.no_grad()
def cls_features(vit: nn.Module, imgs: torch.Tensor, bs: int,
                 device) -> torch.Tensor:
    vit.eval()
    out = []
    for i in range(0, imgs.shape[0], bs):
        with autocast(device):
            tok = vit(normalize(imgs[i:i + bs]))[-1]
        out.append(tok[:, 0].float())
    return torch.cat(out)


@torch.no_grad()
def knn_accuracy(train_f, train_y, val_f, val_y, k: int, t: float = 0.07,
                 chunk: int = 1024) -> float:
    train_f = F.normalize(train_f, dim=1)
    val_f = F.normalize(val_f, dim=1)
    k = min(k, train_f.shape[0])
    correct = 0
    for i in range(0, val_f.shape[0], chunk):
        sim = val_f[i:i + chunk] @ train_f.T
        top, idx = sim.topk(k, dim=1)
        votes = torch.zeros(sim.shape[0], NUM_CLASSES, device=sim.device)
        votes.scatter_add_(1, train_y[idx], (top / t).exp())
        correct += (votes.argmax(1) == val_y[i:i + chunk]).sum().item()
    return correct / val_f.shape[0]


def linear_probe(train_f, train_y, val_f, val_y, p: dict, seed: int,
                 device) -> float:
    torch.manual_seed(seed)
    head = nn.Sequential(nn.BatchNorm1d(train_f.shape[1], affine=False),
                         nn.Linear(train_f.shape[1], NUM_CLASSES)).to(device)
    opt = torch.optim.AdamW(head.parameters(), lr=p['linear_lr'],
                            weight_decay=1e-4)
    n, bs = train_f.shape[0], min(p['linear_batch'], train_f.shape[0])
    steps = p['linear_epochs'] * (n // bs)
    g = torch.Generator().manual_seed(seed)
    it = 0
    for _ in range(p['linear_epochs']):
        perm = torch.randperm(n, generator=g).to(device)
        for b in range(n // bs):
            for grp in opt.param_groups:
                grp['lr'] = p['linear_lr'] * 0.5 * (
                    1 + math.cos(math.pi * it / steps))
            idx = perm[b * bs:(b + 1) * bs]
            loss = F.cross_entropy(head(train_f[idx]), train_y[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            it += 1
    head.eval()
    with torch.no_grad():
        return (head(val_f).argmax(1) == val_y).float().mean().item()


class Classifier(nn.Module):
    """ViT, mean-pooled patch tokens, linear head."""

    def __init__(self, vit: nn.Module, dim: int) -> None:
        super().__init__()
        self.backbone = vit
        self.head = nn.Linear(dim, NUM_CLASSES)
        nn.init.trunc_normal_(self.head.weight, std=2e-5)
        nn.init.zeros_(self.head.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        tok = self.backbone(x)[-1]
        return self.head(tok[:, 1:].mean(1))


def layer_decay_groups(model: nn.Module, num_layers: int, decay: float,
                       wd: float) -> List[dict]:
    """BEiT-style layer-wise lr decay (embeddings 0, block i: i + 1)."""
    groups = {}
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        sub = name[len('backbone.'):] if name.startswith('backbone.') else ''
        if sub.startswith(('cls_token', 'pos_embed', 'patch_embed')):
            lid = 0
        elif sub.startswith('layers.'):
            lid = int(sub.split('.')[1]) + 1
        else:
            lid = num_layers + 1
        no_wd = param.ndim == 1 or name.endswith(('cls_token', 'pos_embed'))
        key = (lid, no_wd)
        if key not in groups:
            groups[key] = dict(params=[], weight_decay=0. if no_wd else wd,
                               lr_scale=decay**(num_layers + 1 - lid))
        groups[key]['params'].append(param)
    return list(groups.values())


def finetune(weights, p: dict, data: dict, idx: np.ndarray, epochs: int,
             seed: int, device, tag: str) -> float:
    torch.manual_seed(seed)
    vit = build_vit(p, weights, device, drop_path_rate=p['ft_drop_path'])
    model = Classifier(vit, p['embed']).to(device)
    groups = layer_decay_groups(model, p['layers'], p['ft_layer_decay'],
                                0.05)
    opt = torch.optim.AdamW(groups, lr=p['ft_lr'], betas=(0.9, 0.999))
    ow = make_optim_wrapper(opt, device, clip=None)
    imgs = data['train']['images'][torch.from_numpy(idx).to(device)]
    labels = data['train']['labels'][torch.from_numpy(idx).to(device)]
    n = imgs.shape[0]
    bs = min(p['ft_batch'], n)
    per_epoch = max(1, n // bs)
    total = per_epoch * epochs
    warmup = max(1, total // 10)
    rng = np.random.default_rng([seed, 3])
    model.train()
    it = 0
    for _ in range(epochs):
        perm = torch.from_numpy(rng.permutation(n)).to(device)
        for b in range(per_epoch):
            set_lr(ow, it, total, p['ft_lr'], warmup, 1e-6)
            sel = perm[b * bs:(b + 1) * bs]
            x = random_resized_crop(imgs[sel].float(), p['img_size'],
                                    p['ft_crop_scale'], rng)
            x = random_flip(x, rng)
            with ow.optim_context(model):
                logits = model((x - _t(MEAN, device)[None, :, None, None]) /
                               _t(STD, device)[None, :, None, None])
                loss = F.cross_entropy(logits.float(), labels[sel],
                                       label_smoothing=0.1)
            ow.update_params(loss)
            it += 1
    model.eval()
    val = data['val']
    correct = 0
    with torch.no_grad():
        for i in range(0, val['images'].shape[0], p['eval_batch']):
            with autocast(device):
                logits = model(normalize(val['images'][i:i + p['eval_batch']]))
            correct += (logits.float().argmax(1) ==
                        val['labels'][i:i + p['eval_batch']]).sum().item()
    acc = correct / val['images'].shape[0]
    log(f'{tag} fine-tune {n} images x {epochs} ep ({total} it, last loss '
        f'{loss.item():.3f}): top-1 {acc:.4f}')
    return acc


# ---------------------------------------------------------------------------
# CamVid segmentation (MMSeg EncoderDecoder + UPerHead)
# ---------------------------------------------------------------------------
def seg_model_cfg(p: dict) -> dict:
    d = p['embed']
    n = p['layers']
    if n < 4:
        raise ValueError('the CamVid UperNet needs a ViT with >= 4 layers')
    if p['ffn'] % d:
        raise ValueError('MMSeg ViT: ffn must be a multiple of embed')
    # four distinct blocks, the last one included (4 -> 0,1,2,3; 6 -> 1,2,3,5)
    out_indices = [n - 1 - 3 * (n // 4), n - 1 - 2 * (n // 4),
                   n - 1 - (n // 4), n - 1]
    bn = dict(type='BN', requires_grad=True)
    return dict(
        type='EncoderDecoder',
        data_preprocessor=dict(
            type='SegDataPreProcessor', mean=MEAN, std=STD,
            bgr_to_rgb=False, pad_val=0, seg_pad_val=IGNORE,
            size=(p['seg_crop'], p['seg_crop'])),
        backbone=dict(
            type='VisionTransformer', img_size=(p['img_size'],) * 2,
            patch_size=p['patch'], in_channels=3, embed_dims=d,
            num_layers=n, num_heads=p['heads'], mlp_ratio=p['ffn'] // d,
            out_indices=tuple(out_indices), qkv_bias=True, drop_rate=0.,
            attn_drop_rate=0., drop_path_rate=0.1 if n >= 6 else 0.,
            with_cls_token=True, output_cls_token=False,
            norm_cfg=dict(type='LN', eps=1e-6), act_cfg=dict(type='GELU'),
            patch_norm=False, patch_bias=True, pre_norm=False,
            final_norm=True, interpolate_mode='bicubic'),
        # strides patch/2, patch, 2*patch, 4*patch (4/8/16/32 for patch 8)
        neck=dict(type='Feature2Pyramid', embed_dim=d,
                  rescales=[2, 1, 0.5, 0.25], norm_cfg=bn),
        decode_head=dict(
            type='UPerHead', in_channels=[d] * 4, in_index=[0, 1, 2, 3],
            pool_scales=(1, 2, 3, 6), channels=p['seg_channels'],
            dropout_ratio=0.1, num_classes=SEG_CLASSES, norm_cfg=bn,
            align_corners=False, ignore_index=IGNORE,
            loss_decode=dict(type='CrossEntropyLoss', use_sigmoid=False,
                             loss_weight=1.0)),
        train_cfg=dict(),
        test_cfg=dict(mode='whole'))


def seg_batch(imgs: torch.Tensor, lbls: torch.Tensor, bs: int, crop: int,
              rng: np.random.Generator, scale=(0.75, 1.5)):
    n, _, h, w = imgs.shape
    s = rng.uniform(*scale)
    rh, rw = min(h, round(crop / s)), min(w, round(crop / s))
    sel = rng.integers(0, n, bs)
    ys = rng.integers(0, h - rh + 1, bs)
    xs = rng.integers(0, w - rw + 1, bs)
    x = torch.stack([imgs[i, :, y:y + rh, xx:xx + rw]
                     for i, y, xx in zip(sel, ys, xs)])
    y = torch.stack([lbls[i, y:y + rh, xx:xx + rw]
                     for i, y, xx in zip(sel, ys, xs)])
    if (rh, rw) != (crop, crop):
        x = F.interpolate(x.float(), (crop, crop), mode='bilinear',
                          align_corners=False).round().clamp(0, 255)
        x = x.to(torch.uint8)
        y = F.interpolate(y[:, None].float(), (crop, crop),
                          mode='nearest')[:, 0].to(torch.uint8)
    flip = _t(rng.random(bs) < 0.5, imgs.device, torch.bool)
    x = torch.where(flip[:, None, None, None], x.flip(-1), x)
    y = torch.where(flip[:, None, None], y.flip(-1), y)
    return x, y


def segmentation(weights, p: dict, cam: dict, seed: int, device,
                 tag: str) -> float:
    from mmengine.structures import PixelData
    from mmseg.registry import MODELS as SEG_MODELS
    from mmseg.registry import OPTIM_WRAPPER_CONSTRUCTORS
    from mmseg.structures import SegDataSample
    import mmseg.models  # noqa: F401  (registers the modules)

    from mmengine.registry import DefaultScope
    torch.manual_seed(seed)
    with DefaultScope.overwrite_default_scope('mmseg'):
        model = SEG_MODELS.build(seg_model_cfg(p))
    model.init_weights()
    model.backbone.load_state_dict(to_mmseg(weights), strict=True)
    model.to(device)
    ow_cfg = dict(
        type='AmpOptimWrapper' if device.type == 'cuda' else 'OptimWrapper',
        optimizer=dict(type='AdamW', lr=p['seg_lr'], betas=(0.9, 0.999),
                       weight_decay=0.05))
    if device.type == 'cuda':
        ow_cfg.update(dtype='bfloat16', loss_scale=1.0)
    ow = OPTIM_WRAPPER_CONSTRUCTORS.build(dict(
        type='ViTLayerDecayOptimizerConstructor', optim_wrapper_cfg=ow_cfg,
        paramwise_cfg=dict(num_layers=p['layers'],
                           layer_decay_rate=p['seg_layer_decay'])))(model)
    rng = np.random.default_rng([seed, 4])
    crop, iters = p['seg_crop'], p['seg_iters']
    train = cam['train']
    warmup = max(1, iters // 10)
    model.train()
    for it in range(iters):
        set_lr(ow, it, iters, p['seg_lr'], warmup, 0.)
        x, y = seg_batch(train['images'], train['labels'], p['seg_batch'],
                         crop, rng)
        samples = []
        for lbl in y:
            s = SegDataSample(metainfo=dict(img_shape=(crop, crop),
                                            ori_shape=(crop, crop)))
            s.gt_sem_seg = PixelData(data=lbl[None].long())
            samples.append(s)
        log_vars = model.train_step(
            dict(inputs=list(x.unbind(0)), data_samples=samples), ow)
        if (it + 1) % max(1, iters // 4) == 0 or it + 1 == iters:
            log(f'{tag} camvid it {it + 1}/{iters}: loss '
                f'{log_vars["loss"].item():.4f}')
    model.eval()
    val = cam['val']
    h, w = val['images'].shape[-2:]
    conf = torch.zeros(SEG_CLASSES, SEG_CLASSES, dtype=torch.long,
                       device=device)
    bs = max(1, p['eval_batch'] // 16)
    with torch.no_grad():
        for i in range(0, val['images'].shape[0], bs):
            x = normalize(val['images'][i:i + bs])
            metas = [dict(img_shape=(h, w), pad_shape=(h, w),
                          ori_shape=(h, w))] * x.shape[0]
            with autocast(device):
                logits = model.encode_decode(x, metas)
            pred = logits.float().argmax(1)
            gt = val['labels'][i:i + bs].long()
            ok = gt != IGNORE
            conf += torch.bincount(gt[ok] * SEG_CLASSES + pred[ok],
                                   minlength=SEG_CLASSES**2).view(
                                       SEG_CLASSES, SEG_CLASSES)
    conf = conf.double().cpu()
    inter = conf.diag()
    union = conf.sum(0) + conf.sum(1) - inter
    iou = inter / union  # NaN for classes absent from gt and prediction
    miou = float(np.nanmean(iou.numpy())) if (union > 0).any() else 0.0
    log(f'{tag} camvid mIoU {miou:.4f}')
    return miou


# ---------------------------------------------------------------------------
# Study
# ---------------------------------------------------------------------------
def evaluate(backbones: dict, p: dict, data: dict, cam: dict,
             few_idx: np.ndarray, seed: int, device, tag: str) -> dict:
    res = {}
    times = {}
    t = time.perf_counter()
    tr, va = data['train'], data['val']
    vit = build_vit(p, backbones['main'], device)
    tf = cls_features(vit, tr['images'], p['eval_batch'], device)
    vf = cls_features(vit, va['images'], p['eval_batch'], device)
    res['knn'] = knn_accuracy(tf, tr['labels'], vf, va['labels'], p['knn_k'])
    res['knn_student'] = None
    if 'student' in backbones:
        svit = build_vit(p, backbones['student'], device)
        res['knn_student'] = knn_accuracy(
            cls_features(svit, tr['images'], p['eval_batch'], device),
            tr['labels'],
            cls_features(svit, va['images'], p['eval_batch'], device),
            va['labels'], p['knn_k'])
        del svit
    res['linear'] = linear_probe(tf, tr['labels'], vf, va['labels'], p,
                                 seed, device)
    times['knn_linear'] = time.perf_counter() - t
    log(f'{tag} k-NN {res["knn"]:.4f}'
        + (f' (student {res["knn_student"]:.4f})'
           if res['knn_student'] is not None else '')
        + f', linear {res["linear"]:.4f}')
    del vit, tf, vf
    t = time.perf_counter()
    res['ft10'] = finetune(backbones['main'], p, data, few_idx,
                           p['ft10_epochs'], seed, device, f'{tag} 10%')
    times['ft10'] = time.perf_counter() - t
    t = time.perf_counter()
    res['ft100'] = finetune(backbones['main'], p, data,
                            np.arange(tr['images'].shape[0]),
                            p['ft100_epochs'], seed, device, f'{tag} 100%')
    times['ft100'] = time.perf_counter() - t
    t = time.perf_counter()
    res['miou'] = segmentation(backbones['main'], p, cam, seed, device, tag)
    times['camvid'] = time.perf_counter() - t
    res['eval_time_s'] = times
    return res


def summarize(values: List[Optional[float]]) -> Optional[dict]:
    vals = [v for v in values if v is not None]
    if not vals:
        return None
    a = np.array(vals, dtype=float)
    return dict(mean=float(a.mean()),
                std=float(a.std(ddof=1)) if len(a) > 1 else 0.0,
                min=float(a.min()), max=float(a.max()), n=len(a))


def fmt(s: Optional[dict], pct: bool, digits: int = 1) -> str:
    if s is None:
        return '-'
    k = 100. if pct else 1.
    out = f'{s["mean"] * k:.{digits}f}'
    if s['n'] > 1:
        out += f' ± {s["std"] * k:.{digits}f}'
    return out


def table(results: dict) -> str:
    head = ('| variant | k-NN | linear | ft-10% | ft-100% | CamVid mIoU | '
            'final loss_freq | final loss_distill | pre-train time (s) |')
    lines = [head, '|' + '---|' * 9]
    for name, r in results['variants'].items():
        s = r['summary']
        lines.append(
            f'| {VARIANTS[name]["label"]} | ' + ' | '.join(
                fmt(s.get(m), True) for m in METRICS) + ' | '
            + fmt(s.get('final_loss_freq'), False, 4) + ' | '
            + fmt(s.get('final_loss_distill'), False, 4) + ' | '
            + fmt(s.get('pretrain_time_s'), False, 0) + ' |')
    return '\n'.join(lines)


def plot(results: dict, path: str) -> None:
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(1, 3, figsize=(18, 5.5))
    colors = dict(zip(VARIANTS, plt.rcParams['axes.prop_cycle'].by_key()
                      ['color']))

    def smooth(y):
        y = np.asarray(y, dtype=float)
        w = max(1, len(y) // 50)
        return np.convolve(y, np.ones(w) / w, mode='valid') if w > 1 else y

    for ax, key in zip(axes[:2], ('loss_freq', 'loss_distill')):
        for name, r in results['variants'].items():
            for i, run in enumerate(r['seeds'].values()):
                curve = run.get('curves', {}).get(key)
                if curve:
                    ax.plot(smooth(curve), color=colors[name], alpha=0.8,
                            lw=1.2, label=VARIANTS[name]['label']
                            if i == 0 else None)
        ax.set_title(key + ' (moving average)')
        ax.set_xlabel('iteration')
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=7)
    ax = axes[2]
    names = list(results['variants'])
    width = 0.8 / max(1, len(names))
    for j, name in enumerate(names):
        s = results['variants'][name]['summary']
        means = [s[m]['mean'] * 100 if s.get(m) else 0 for m in METRICS]
        errs = [s[m]['std'] * 100 if s.get(m) else 0 for m in METRICS]
        ax.bar(np.arange(len(METRICS)) + (j - (len(names) - 1) / 2) * width,
               means, width, yerr=errs, color=colors[name], capsize=2,
               label=VARIANTS[name]['label'])
    ax.set_xticks(np.arange(len(METRICS)))
    ax.set_xticklabels([METRIC_NAMES[m] for m in METRICS])
    ax.set_ylabel('% (top-1 / mIoU)')
    ax.set_title('downstream (mean ± std over seeds)')
    ax.grid(axis='y', alpha=0.3)
    ax.legend(fontsize=7, loc='upper center', bbox_to_anchor=(0.5, -0.1),
              ncol=2)
    fig.suptitle(f'Imagenette study, preset {results["preset"]}, '
                 f'{results["hardware"]["device"]}')
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def hardware(device) -> dict:
    info = dict(torch=torch.__version__, python=platform.python_version(),
                cpu=platform.processor() or platform.machine(),
                cpu_count=os.cpu_count(), threads=torch.get_num_threads(),
                device_type=device.type)
    if device.type == 'cuda':
        info['device'] = torch.cuda.get_device_name(device)
        info['cuda'] = torch.version.cuda
    else:
        info['device'] = f'CPU ({info["cpu"]}, {os.cpu_count()} cores)'
    return info


def write_outputs(results: dict, stem: str, json_too: bool = True) -> dict:
    """Write ``stem``.md (table), .json (everything) and .png (curves)."""
    p, hw, d = results['config'], results['hardware'], results['data']
    header = (
        f'# Imagenette study, preset `{results["preset"]}`\n\n'
        f'Device: {hw["device"]}, torch {hw["torch"]}. Wall time '
        f'{results["wall_time_s"] / 60:.1f} min. Seeds: {p["seeds"]} '
        f'(mean ± std). Backbone ViT {p["embed"]}-d, {p["layers"]} layers, '
        f'{p["heads"]} heads, patch {p["patch"]}, {p["img_size"]} px; '
        f'pre-training {p["epochs"]} epoch(s) of '
        f'{d["imagenette"]["train"]} images, batch {p["batch"]}. '
        f'Accuracies are top-1 on the Imagenette val split '
        f'({d["imagenette"]["val"]} images), mIoU on CamVid val '
        f'({d["camvid"]["val"]} images), in %. Losses: mean of the last '
        f'5 % of iterations. FOLK variants are evaluated with the EMA '
        f'teacher, MFM variants with the student.\n\n')
    paths = {ext: f'{stem}.{ext}' for ext in ('md', 'json', 'png')}
    with open(paths['md'], 'w') as f:
        f.write(header + table(results) + '\n')
    if json_too:
        with open(paths['json'], 'w') as f:
            json.dump(results, f, indent=1)
    plot(results, paths['png'])
    return paths


def parse_set(items: Sequence[str]) -> dict:
    out = {}
    for item in items:
        key, _, value = item.partition('=')
        try:
            out[key] = ast.literal_eval(value)
        except (ValueError, SyntaxError):
            out[key] = value
    return out


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--preset', choices=sorted(PRESETS), default='gpu')
    parser.add_argument('--seeds', type=int, default=None,
                        help='number of seeds (0..N-1); preset default')
    parser.add_argument('--variants', default=','.join(VARIANTS))
    parser.add_argument('--data', default='auto',
                        help='imagenette64.zip or an imagenette folder')
    parser.add_argument('--camvid', default='auto',
                        help='camvid240.zip or a camvid folder')
    parser.add_argument('--device', default=None)
    parser.add_argument(
        '--threads', type=int, default=None,
        help='CPU threads; default on a CPU device: 1 when other work is '
        'running (1-min load average + 1 > cores: spinning OpenMP threads '
        'are then up to 100x slower), else all cores')
    parser.add_argument('--out-dir', default=osp.join(REPO, 'benchmarks',
                                                      'results'))
    parser.add_argument('--prefix', default=None,
                        help='output name (default imagenette_study_PRESET)')
    parser.add_argument('--set', nargs='*', default=[], metavar='KEY=VALUE',
                        help='override preset keys, e.g. epochs=5')
    parser.add_argument('--replot', metavar='JSON', default=None,
                        help='only rewrite the .md and .png of a finished '
                        'run from its JSON')
    args = parser.parse_args(argv)
    if args.replot:
        with open(args.replot) as f:
            results = json.load(f)
        paths = write_outputs(results, osp.splitext(args.replot)[0],
                              json_too=False)
        print(table(results))
        log(f'wrote {paths["md"]}, {paths["png"]}')
        return results
    # mmengine's INFO / WARNING lines (e.g. one per frozen teacher parameter
    # from the optimizer constructor) would drown the progress lines.
    MMLogger.get_instance('imagenette_study', log_level='ERROR')

    p = copy.deepcopy(PRESETS[args.preset])
    overrides = parse_set(args.set)
    unknown = set(overrides) - set(p)
    if unknown:
        parser.error(f'unknown preset keys {sorted(unknown)}')
    p.update(overrides)
    if args.seeds is not None:
        p['seeds'] = args.seeds
    variants = [v for v in args.variants.split(',') if v]
    bad = [v for v in variants if v not in VARIANTS]
    if bad:
        parser.error(f'unknown variants {bad}; choose from {list(VARIANTS)}')
    if p['img_size'] % p['patch']:
        parser.error('img_size must be a multiple of patch')
    device = torch.device(args.device or (
        'cuda' if torch.cuda.is_available() else 'cpu'))
    if device.type == 'cuda':
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    if args.threads is None and device.type == 'cpu':
        cores = os.cpu_count() or 1
        load = os.getloadavg()[0] if hasattr(os, 'getloadavg') else 0.
        args.threads = 1 if load + 1 > cores else cores
    if args.threads:
        torch.set_num_threads(args.threads)
    prefix = args.prefix or f'imagenette_study_{args.preset}'
    os.makedirs(args.out_dir, exist_ok=True)
    wall0 = time.perf_counter()
    hw = hardware(device)
    log(f'preset {args.preset} on {hw["device"]}; variants {variants}; '
        f'{p["seeds"]} seed(s)')

    # -- data, decoded once ------------------------------------------------
    t = time.perf_counter()
    names = (['imagenette64.zip', 'imagenette128'] if p['img_size'] <= 64
             else ['imagenette128', 'imagenette64.zip'])
    data = load_imagenette(find_source(args.data, names), p['img_size'],
                           p['train_limit'], p['val_limit'])
    cam = load_camvid(find_source(args.camvid, ['camvid240.zip', 'camvid']),
                      tuple(p['seg_size']), p['seg_train_limit'],
                      p['seg_val_limit'])
    for d in (data, cam):
        for split in ('train', 'val'):
            for key in ('images', 'labels'):
                d[split][key] = d[split][key].to(device)
    few_idx = fewshot_indices(data['train']['paths'],
                              data['train']['labels'].cpu().numpy(), 0.1)
    data_time = time.perf_counter() - t
    log(f'data: Imagenette {len(data["train"]["paths"])} train / '
        f'{len(data["val"]["paths"])} val at {p["img_size"]} px from '
        f'{data["source"]}; 10% subset {len(few_idx)}; CamVid '
        f'{cam["train"]["images"].shape[0]} train / '
        f'{cam["val"]["images"].shape[0]} val at {tuple(p["seg_size"])} from '
        f'{cam["source"]} ({data_time:.1f}s)')

    results = dict(
        preset=args.preset, config=p, variants_run=variants,
        variant_specs={k: {kk: vv for kk, vv in VARIANTS[k].items()}
                       for k in variants},
        hardware=hw,
        data=dict(
            imagenette=dict(source=_rel(data['source']), size=p['img_size'],
                            train=len(data['train']['paths']),
                            val=len(data['val']['paths']),
                            fewshot10=len(few_idx)),
            camvid=dict(source=_rel(cam['source']), size=list(p['seg_size']),
                        train=int(cam['train']['images'].shape[0]),
                        val=int(cam['val']['images'].shape[0])),
            decode_time_s=data_time),
        filters={k: variant_filters(VARIANTS[k]['filters'], p['img_size'])
                 for k in variants if VARIANTS[k]['algo']},
        variants={}, started=time.strftime('%Y-%m-%d %H:%M:%S'))
    for name in variants:
        results['variants'][name] = dict(label=VARIANTS[name]['label'],
                                         seeds={})
    for seed in range(p['seeds']):
        for name in variants:
            tag = f'{name} s{seed}'
            t = time.perf_counter()
            if VARIANTS[name]['algo'] is None:
                run = dict(pretrain_time_s=0.0, final_loss_freq=None,
                           final_loss_distill=None, curves={},
                           weights='random')
                backbones = dict(main=random_backbone(p, seed))
            else:
                run, backbones = pretrain(name, p, data, seed, device, tag)
            run.update(evaluate(backbones, p, data, cam, few_idx, seed,
                                device, tag))
            run['wall_time_s'] = time.perf_counter() - t
            results['variants'][name]['seeds'][str(seed)] = run
            log(f'{tag} done in {run["wall_time_s"]:.1f}s: ' + ', '.join(
                f'{m} {run[m]:.4f}' for m in METRICS))
    for name in variants:
        runs = list(results['variants'][name]['seeds'].values())
        results['variants'][name]['summary'] = {
            key: summarize([r.get(key) for r in runs])
            for key in METRICS + ('knn_student', 'final_loss_freq',
                                  'final_loss_distill', 'pretrain_time_s',
                                  'wall_time_s')}
    results['wall_time_s'] = time.perf_counter() - wall0
    results['finished'] = time.strftime('%Y-%m-%d %H:%M:%S')

    paths = write_outputs(results, osp.join(args.out_dir, prefix))
    print('\n' + table(results), flush=True)
    log(f'wrote {paths["md"]}, {paths["json"]}, {paths["png"]} '
        f'(wall time {results["wall_time_s"]:.0f}s)')
    return results


if __name__ == '__main__':
    main()
