"""Resized crops and flips of uint8 images, batched on any device.

FOLK's data workers can leave the two views' crop and resize to the model's
device (``FOLKViews(crop='device')``): a worker then decodes the image once,
draws every view's crop box and flip with MMPretrain's
``RandomResizedCrop`` / MMCV's ``RandomFlip`` (the same random calls as the
CPU path), and passes the decoded image with those parameters; the data
preprocessor cuts the views here.

The arithmetic is Pillow's bicubic resampling, which MMPretrain's
``RandomResizedCrop(backend='pillow', interpolation='bicubic')`` calls
through ``mmcv.imresize``: antialiased (the kernel is widened by the
down-scaling factor), cubic coefficient a = -0.5, two separable passes
(horizontal, then vertical), each rounded and clamped to uint8. The
per-view coefficients are computed on the host as Pillow computes them
(vectorised over the batch) and the two passes of all views run as two
batched float32 matrix products (:func:`crop_rows`): the number of device
operations does not depend on the batch size. The images of a batch travel
as :func:`pack_rows` lays them out: the rows of all channels of all images,
one uint8 matrix padded to the widest image. Results agree with Pillow to
the level except at rare high-contrast pixels where Pillow's fixed-point
coefficients round differently (``tests/test_views/test_crop.py`` measures
it on real images). :func:`resize_bicubic` is the per-image reference.
"""
import contextlib
from typing import Optional, Sequence, Tuple, Union

import numpy as np
import torch
import torch.nn.functional as F

from .recipe import CROP_KEYS, check_crop_params, crop_array
from .transfer import HostPack

_SUPPORT = 2.0  # Pillow's bicubic filter support


def resize_bicubic(img: torch.Tensor, size: Sequence[int]) -> torch.Tensor:
    """Pillow's antialiased bicubic resize of a uint8 batch, per image.

    On CPU torch's uint8 kernel; elsewhere :func:`resize_bicubic_float`.

    Args:
        img (torch.Tensor): (N, C, H, W) uint8.
        size (tuple[int, int]): output (height, width).

    Returns:
        torch.Tensor: (N, C, *size) uint8.
    """
    if img.dtype != torch.uint8:
        raise TypeError(f'resize_bicubic expects uint8 images, got '
                        f'{img.dtype}')
    size = (int(size[0]), int(size[1]))
    if img.device.type == 'cpu':
        return F.interpolate(
            img,
            size=size,
            mode='bicubic',
            antialias=True,
            align_corners=False)
    return resize_bicubic_float(img, size)


def resize_bicubic_float(img: torch.Tensor,
                         size: Sequence[int]) -> torch.Tensor:
    """:func:`resize_bicubic` in float32 on any device: Pillow's two passes
    (horizontal, then vertical), each rounded and clamped to [0, 255]."""
    size = (int(size[0]), int(size[1]))
    x = img.float()  # (N, C, H, W)
    x = F.interpolate(  # horizontal pass: (N, C, H, size[1])
        x,
        size=(x.shape[-2], size[1]),
        mode='bicubic',
        antialias=True,
        align_corners=False).round_().clamp_(0, 255)
    x = F.interpolate(  # vertical pass: (N, C, *size)
        x,
        size=size,
        mode='bicubic',
        antialias=True,
        align_corners=False).round_().clamp_(0, 255)
    return x.to(torch.uint8)


def _bicubic(x: np.ndarray) -> np.ndarray:
    """Pillow's ``bicubic_filter`` (a = -0.5)."""
    a = -0.5
    x = np.abs(x)
    near = ((a + 2.0) * x - (a + 3.0)) * x * x + 1
    far = (((x - 5) * x + 8) * x - 4) * a
    return np.where(x < 1.0, near, np.where(x < 2.0, far, 0.0))


def bicubic_coefficients(
        length: np.ndarray,
        out_size: int,
        flip: Optional[np.ndarray] = None) -> Tuple[np.ndarray, np.ndarray]:
    """Pillow's antialiased bicubic coefficients of one axis, for N views.

    Repeats ``precompute_coeffs`` of Pillow's ``Resample.c`` (float64,
    normalised per output pixel), vectorised over the views.

    Args:
        length (np.ndarray): (N,) input lengths (the crops' widths or
            heights).
        out_size (int): output length.
        flip (np.ndarray, optional): (N,) bool, reverse the output order.

    Returns:
        tuple[np.ndarray, np.ndarray]: ``(first, taps)``: (N, out_size)
        int64 index of every output pixel's first input pixel (relative to
        the crop), and (N, out_size, K) float64 weights of input pixels
        ``first .. first + K - 1`` (0 beyond the crop).
    """
    length = np.asarray(length, np.float64)
    scale = length / out_size  # (N,)
    filterscale = np.maximum(scale, 1.0)
    support = _SUPPORT * filterscale
    ksize = int(np.ceil(support).max()) * 2 + 1
    center = (np.arange(out_size) + 0.5)[None] * scale[:, None]  # (N, S)
    # C casts truncate towards zero
    xmin = np.maximum(np.trunc(center - support[:, None] + 0.5), 0)
    xmax = np.minimum(
        np.trunc(center + support[:, None] + 0.5), length[:, None]) - xmin
    x = np.arange(ksize)[None, None]  # (1, 1, K)
    w = _bicubic((x + xmin[..., None] - center[..., None] + 0.5) /
                 filterscale[:, None, None])
    w = np.where(x < xmax[..., None], w, 0.0)
    total = w.sum(-1, keepdims=True)
    w = np.divide(w, total, out=np.zeros_like(w), where=total != 0)
    first = xmin.astype(np.int64)
    if flip is not None:
        flip = np.asarray(flip, bool)[:, None]
        first = np.where(flip, first[:, ::-1], first)
        w = np.where(flip[..., None], w[:, ::-1], w)
    return first, w


def pack_rows(images: Sequence[Union[np.ndarray, torch.Tensor]],
              hwc: bool = True) -> Tuple[torch.Tensor, np.ndarray]:
    """Lay out a batch of images of different sizes as one uint8 matrix.

    Image ``j`` of shape (H, W, C) (``hwc``) or (C, H, W) contributes its
    ``C * H`` rows, channel by channel, each padded with zeros to the widest
    image of the batch.

    Returns:
        tuple[Tensor, np.ndarray]: ``rows`` (sum C * H, max W) uint8 and
        ``shapes`` (N, 3) int64 of (C, H, W).
    """
    arrays = []
    for img in images:
        a = img.numpy() if isinstance(img, torch.Tensor) else np.asarray(img)
        if a.dtype != np.uint8 or a.ndim != 3:
            raise ValueError(f'pack_rows: images must be 3-d uint8 arrays, '
                             f'got {a.dtype} {a.shape}')
        arrays.append(a.transpose(2, 0, 1) if hwc else a)
    shapes = np.array([a.shape for a in arrays], np.int64).reshape(-1, 3)
    width = int(shapes[:, 2].max()) if len(arrays) else 0
    rows = np.zeros((int((shapes[:, 0] * shapes[:, 1]).sum()), width),
                    np.uint8)
    start = 0
    for a, (c, h, w) in zip(arrays, shapes):
        rows[start:start + c * h, :w] = a.reshape(c * h, w)
        start += c * h
    return torch.from_numpy(rows), shapes


@contextlib.contextmanager
def _exact_float32_matmul(device: torch.device):
    """No TF32 in the crops' matrix products (CUDA's matmul flag)."""
    if device.type != 'cuda':
        yield
        return
    old = torch.backends.cuda.matmul.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = False
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32 = old


def crop_plan(shapes: np.ndarray, source: np.ndarray, crops: np.ndarray,
              pack: HostPack) -> Tuple[int, int]:
    """Host part of :func:`crop_rows`: add its index and weight arrays to
    ``pack``.

    Args:
        shapes (np.ndarray): (M, 3) (C, H, W) of the images in ``rows``.
        source (np.ndarray): (N,) image index of every view.
        crops (np.ndarray): (N, 6) crop parameters (:data:`CROP_COLUMNS`),
            checked against the images' sizes.
        pack (HostPack): receives ``crop_rows``, ``crop_hidx``,
            ``crop_htaps``, ``crop_vidx``, ``crop_vtaps``, ``crop_half``.

    Returns:
        tuple[int, int]: the output size and the tallest crop.
    """
    crops = np.asarray(crops, np.int64).reshape(-1, 6)
    source = np.asarray(source, np.int64)
    if len(crops) != len(source):
        raise ValueError(f'crop_rows: {len(crops)} crops for {len(source)} '
                         'source indices')
    sizes = np.unique(crops[:, 5])
    if len(sizes) > 1:
        raise ValueError('crop_rows: the views of a batch must share one '
                         f'size, got {sizes.tolist()}')
    if len(shapes) and (shapes[:, 0] != 3).any():
        raise ValueError(f'crop_rows: images must have 3 channels, got '
                         f'{sorted(set(shapes[:, 0].tolist()))}')
    size = int(sizes[0])
    top, left, h, w, flip = crops[:, :5].T
    height, width = shapes[source, 1], shapes[source, 2]
    bad = np.flatnonzero((top < 0) | (left < 0) | (h <= 0) | (w <= 0)
                         | (top + h > height) | (left + w > width))
    if len(bad) or size <= 0:
        i = int(bad[0]) if len(bad) else 0
        check_crop_params(
            dict(
                box=tuple(int(v) for v in crops[i, :4]),
                flip=bool(crops[i, 4]),
                size=size), int(height[i]), int(width[i]), f'crop_params[{i}]')
    row0 = np.concatenate([[0], np.cumsum(shapes[:, 0] * shapes[:, 1])])
    hmax = int(h.max())
    y = np.arange(hmax)
    # (N, hmax, 3) rows of every view's crop, row-major over (y, channel);
    # rows past the crop repeat the first one (their vertical weights are 0)
    rows = (
        row0[source][:, None, None] +
        np.arange(3)[None, None, :] * height[:, None, None] +
        top[:, None, None] + np.where(y < h[:, None], y, 0)[..., None])
    first, taps = bicubic_coefficients(w, size, flip.astype(bool))
    hidx = np.minimum(
        left[:, None, None] + first[..., None] + np.arange(taps.shape[-1]),
        max(shapes[:, 2].max(), 1) - 1)
    vfirst, vtaps = bicubic_coefficients(h, size)
    vidx = np.minimum(vfirst[..., None] + np.arange(vtaps.shape[-1]), hmax - 1)
    pack.add('crop_rows', rows.reshape(-1))
    pack.add('crop_hidx', hidx)
    pack.add('crop_htaps', taps.astype(np.float32))
    pack.add('crop_vidx', vidx)
    pack.add('crop_vtaps', vtaps.astype(np.float32))
    pack.add('crop_half', np.full((1, 1, 1), 0.5, np.float32))
    return size, hmax


def crop_rows(rows: torch.Tensor, dev: dict, size: int,
              hmax: int) -> torch.Tensor:
    """Device part: cut, resize and flip all views at once.

    Args:
        rows (Tensor): (R, W) uint8 rows of the batch (:func:`pack_rows`).
        dev (dict): the device arrays of :func:`crop_plan`.
        size (int): output side.
        hmax (int): tallest crop.

    Returns:
        Tensor: (N, 3, size, size) uint8.
    """
    n = dev['crop_htaps'].shape[0]
    width = rows.shape[1]
    with _exact_float32_matmul(rows.device):
        # (N, hmax * 3, W): the crop's rows, channels interleaved
        x = rows.index_select(0, dev['crop_rows']).view(n, hmax * 3,
                                                        width).float()
        wh = torch.zeros(
            n, size, width,
            device=x.device).scatter_add_(2, dev['crop_hidx'],
                                          dev['crop_htaps'])
        # horizontal pass: (N, hmax * 3, W) @ (N, W, S)
        x = torch.bmm(x, wh.transpose(1, 2)).round_().clamp_(0, 255)
        wv = torch.zeros(
            n, size, hmax,
            device=x.device).scatter_add_(2, dev['crop_vidx'],
                                          dev['crop_vtaps'])
        # vertical pass: (N, S, hmax) @ (N, hmax, 3 * S) -> (N, S, 3, S),
        # plus 0.5: the uint8 cast truncates, so this rounds as Pillow does
        x = torch.baddbmm(dev['crop_half'], wv,
                          x.view(n, hmax, 3 * size)).clamp_(0, 255)
    return x.view(n, size, 3, size).permute(0, 2, 1, 3).to(
        torch.uint8, memory_format=torch.contiguous_format)


def resized_crops(images: Union[torch.Tensor, Sequence[torch.Tensor]],
                  params: Sequence[dict]) -> torch.Tensor:
    """Cut, resize and flip one view from each image.

    Equals MMPretrain's ``RandomResizedCrop`` (Pillow, bicubic) followed by
    MMCV's horizontal ``RandomFlip`` for the same drawn parameters, to the
    level (see the module docstring). A convenience over
    :func:`crop_plan` / :func:`crop_rows` for images given one by one.

    Args:
        images (Tensor | list[Tensor]): N images, each (C, H, W) uint8 (a
            list when their sizes differ), all on one device.
        params (list[dict]): N crop parameter dicts (:data:`CROP_KEYS`), all
            with the same ``size``.

    Returns:
        torch.Tensor: (N, C, size, size) uint8.
    """
    if len(images) != len(params):
        raise ValueError(f'resized_crops: {len(images)} images but '
                         f'{len(params)} crop parameter dicts')
    if len({int(p['size']) for p in params}) > 1:
        raise ValueError('resized_crops: the views of a batch must share one '
                         f'size, got {sorted({p["size"] for p in params})}')
    for i, (img, p) in enumerate(zip(images, params)):
        check_crop_params(p, img.shape[-2], img.shape[-1], f'crop_params[{i}]')
    device = images[0].device
    rows, shapes = pack_rows([img.cpu() for img in images], hwc=False)
    pack = HostPack()
    size, hmax = crop_plan(shapes, np.arange(len(images)), crop_array(params),
                           pack)
    return crop_rows(rows.to(device), pack.to(device), size, hmax)


__all__ = [
    'CROP_KEYS', 'check_crop_params', 'resize_bicubic', 'resize_bicubic_float',
    'bicubic_coefficients', 'pack_rows', 'crop_plan', 'crop_rows',
    'resized_crops'
]
