"""DINO's photometric augmentation, batched on any device.

FOLK's two views get DINO's photometric augmentation: colour jitter (the
four operations in a random order per image), grayscale, Gaussian blur and
solarisation. MMPretrain runs these on CPU, one image at a time, with MMCV's
OpenCV-backed functions and Pillow's Gaussian blur; at two views per image
they cost most of FOLK's data-loading time. This module applies the same
operations to a batch of uint8 images on the model's device, with one
parameter set per image, and reproduces the CPU functions' arithmetic (their
fixed-point tables, intermediate uint8 rounding and truncation), so that the
images agree with the CPU ones to the level (tested on real images in
``tests/test_photometric.py``):

=================  ==========================================  =============
operation          CPU reference                               batched here
=================  ==========================================  =============
brightness         ``mmcv.adjust_brightness(backend='cv2')``   equal
contrast           ``mmcv.adjust_contrast(backend='cv2')``     equal
saturation         ``mmcv.adjust_color(backend='cv2')``        equal
hue                ``mmcv.adjust_hue(backend='cv2')``          within 1 level
                   (OpenCV's uint8 HSV round trip)             (rare pixels)
grayscale          ``mmcv.RandomGrayscale`` (keep channels)    equal
Gaussian blur      ``PIL.ImageFilter.GaussianBlur`` (3 box     equal
                   blurs, as MMPretrain's ``GaussianBlur``)
solarise           ``mmcv.solarize(thr=128)``                  equal
=================  ==========================================  =============

The per-image parameters are plain dicts (see :data:`PARAM_KEYS`), drawn in
the data pipeline by :class:`folk.datasets.FOLKViews` and carried to the
model in the data samples' metainfo; :func:`apply_photometric` applies a
list of them to a batch. Images are BGR, the channel order of the data
pipeline that MMCV's functions assume.

The fused multiply-add of OpenCV's ``addWeighted`` (saturation, contrast)
and MMCV's grayscale sum are evaluated in float64, so devices without
float64 (Apple MPS) are not supported; Pillow's fixed-point box blur is
split into exact float32 depthwise convolutions.
"""
import functools
import math
from typing import List, Optional, Sequence, Tuple

import numpy as np
import torch
import torch.nn.functional as F

#: Keys of one image's parameter dict and their meaning.
PARAM_KEYS = (
    'jitter',  # bool: colour jitter applied
    'order',  # 4 ints: order of brightness (0), contrast (1),
    #           saturation (2), hue (3)
    'brightness',  # factor, 1 = identity
    'contrast',  # factor, 1 = identity
    'saturation',  # factor, 1 = identity
    'hue',  # shift in [-0.5, 0.5] of a full turn, 0 = identity
    'grayscale',  # bool
    'blur_sigma',  # Gaussian blur radius (Pillow's), 0 = no blur
    'solarize',  # bool: invert the pixels >= 128
)
JITTER_OPS = ('brightness', 'contrast', 'saturation', 'hue')
#: mmcv ``RandomGrayscale`` weights of FOLK's recipe, B, G, R order.
GRAYSCALE_WEIGHTS = (0.114, 0.587, 0.2989)
SOLARIZE_THRESHOLD = 128
BLUR_PASSES = 3  # Pillow's GaussianBlur: three box blurs

# OpenCV's fixed-point RGB -> gray (``COLOR_BGR2GRAY`` on uint8): 15 bits.
_GRAY_B, _GRAY_G, _GRAY_R, _GRAY_SHIFT = 3735, 19235, 9798, 15
# OpenCV's uint8 RGB -> HSV (``COLOR_BGR2HSV_FULL``): 12-bit tables.
_HSV_SHIFT = 12
# (b, g, r) entries of the 4-value table of HSV -> RGB, per hue sector.
_HSV_SECTORS = ((1, 3, 0), (1, 0, 2), (3, 0, 1), (0, 2, 1), (0, 1, 3), (2, 1,
                                                                        0))


def identity_params() -> dict:
    """Parameters that leave an image unchanged."""
    return dict(
        jitter=False,
        order=(0, 1, 2, 3),
        brightness=1.0,
        contrast=1.0,
        saturation=1.0,
        hue=0.0,
        grayscale=False,
        blur_sigma=0.0,
        solarize=False)


def check_params(params: dict, where: str = 'params') -> None:
    """Raise a ValueError naming ``where`` and the key if ``params`` is bad.
    """
    if not isinstance(params, dict):
        raise ValueError(f'{where} must be a dict with keys {PARAM_KEYS}, '
                         f'got {type(params).__name__}')
    missing = [k for k in PARAM_KEYS if k not in params]
    unknown = [k for k in params if k not in PARAM_KEYS]
    if missing or unknown:
        raise ValueError(f'{where}: missing keys {missing}, unknown keys '
                         f'{unknown}; expected {PARAM_KEYS}')
    if sorted(int(i) for i in params['order']) != [0, 1, 2, 3]:
        raise ValueError(f'{where}.order must be a permutation of 0-3, got '
                         f'{params["order"]!r}')
    if not -0.5 <= params['hue'] <= 0.5:
        raise ValueError(f'{where}.hue must be in [-0.5, 0.5], got '
                         f'{params["hue"]!r}')
    for key in ('brightness', 'contrast', 'saturation', 'blur_sigma'):
        if not params[key] >= 0:
            raise ValueError(f'{where}.{key} must be >= 0, got '
                             f'{params[key]!r}')


# ---------------------------------------------------------------------------
# Host-side helpers (per-image scalars computed as the C code computes them)
# ---------------------------------------------------------------------------
def hue_shift(hue: float) -> int:
    """The uint8 hue shift MMCV adds: ``hue * 255`` truncated, mod 256."""
    return int(hue * 255) % 256


def pil_box_blur_weights(sigma: float) -> Tuple[int, int, int]:
    """Box radius and fixed-point weights of Pillow's Gaussian blur.

    Pillow approximates a Gaussian of standard deviation ``sigma`` by three
    box blurs with a fractional radius (Gwosdek et al., SSVM 2011) and runs
    them in 24-bit fixed point. This repeats its float32 computation of the
    radius and weights (``libImaging/BoxBlur.c``).

    Returns:
        tuple: ``(radius, ww, fw)``: integer part of the box radius, weight
        of the ``2 * radius + 1`` inner pixels and of the two outer pixels,
        both in units of 2**-24.
    """
    f32 = np.float32
    radius = f32(sigma)  # Python float -> C float
    sigma2 = f32(radius * radius) / f32(BLUR_PASSES)
    length = f32(math.sqrt(12.0 * float(sigma2) + 1.0))
    l_int = f32(math.floor((float(length) - 1.0) / 2.0))
    a = f32(f32(2) * l_int + f32(1)) * f32(l_int *
                                           (l_int + f32(1)) - f32(3) * sigma2)
    a = a / f32(f32(6) * f32(sigma2 - (l_int + f32(1)) * (l_int + f32(1))))
    box = f32(l_int + a)
    r = int(box)
    ww = int(f32(1 << 24) / f32(box * f32(2) + f32(1)))
    fw = ((1 << 24) - (r * 2 + 1) * ww) // 2
    return r, ww, fw


# ---------------------------------------------------------------------------
# Batched operations on (N, 3, H, W) uint8 BGR images, one factor per image
# ---------------------------------------------------------------------------
def _per_image(values, x: torch.Tensor, dtype=None) -> torch.Tensor:
    """(N,) values as an (N, 1, 1, 1) tensor on ``x``'s device."""
    t = torch.as_tensor(values, dtype=dtype or torch.float64)
    return t.to(x.device).view(-1, 1, 1, 1)


def _fma_f32(x: torch.Tensor, alpha: torch.Tensor,
             beta: torch.Tensor) -> torch.Tensor:
    """``x * alpha + beta`` rounded once to float32, as a fused
    multiply-add (OpenCV's ``addWeighted`` kernels) computes it.

    ``x`` holds integers <= 255 and ``alpha``, ``beta`` float32 values, so
    the float64 product is exact and the sum is rounded (twice, to float64
    then float32; the two differ only on exact float32 ties).
    """
    return (x.double() * alpha.double() + beta.double()).float()


def rgb_to_gray(img: torch.Tensor) -> torch.Tensor:
    """OpenCV's ``COLOR_BGR2GRAY`` of uint8 BGR images, (N, 1, H, W) int32.
    """
    b, g, r = img.int().unbind(1)  # (N, H, W) each
    gray = (b * _GRAY_B + g * _GRAY_G + r * _GRAY_R +
            (1 << (_GRAY_SHIFT - 1))) >> _GRAY_SHIFT
    return gray[:, None]


def _apply_lut(img: torch.Tensor, lut: torch.Tensor) -> torch.Tensor:
    """Map every image's uint8 levels through its own (N, 256) table."""
    n = img.shape[0]
    out = torch.gather(lut, 1, img.reshape(n, -1).long())
    return out.to(torch.uint8).view_as(img)


def adjust_brightness(img: torch.Tensor, factor) -> torch.Tensor:
    """``mmcv.adjust_brightness(img, factor, backend='cv2')`` per image.

    Args:
        img (Tensor): (N, 3, H, W) uint8 BGR.
        factor (Sequence[float] | Tensor): (N,) factors.

    Returns:
        Tensor: (N, 3, H, W) uint8.
    """
    alpha = _per_image(factor, img, torch.float32)
    # float32 product = OpenCV's fused x * alpha + 0 * beta
    out = img.float() * alpha
    return out.clamp_(0, 255).floor_().to(torch.uint8)


def adjust_contrast(img: torch.Tensor, factor) -> torch.Tensor:
    """``mmcv.adjust_contrast(img, factor, backend='cv2')`` per image: blend
    with the image's mean gray level (rounded to an integer).

    A per-image function of the level: evaluated on the 256 levels (a
    (N, 256) table) and looked up.
    """
    alpha = _per_image(factor, img, torch.float32).view(-1, 1)
    # OpenCV takes 1 - factor as a double and multiplies in float32
    weight = _per_image([1 - float(f) for f in factor], img,
                        torch.float32).view(-1, 1)
    gray = rgb_to_gray(img)
    count = gray[0].numel()
    mean = torch.round(gray.flatten(1).sum(1).double() / count).float()
    beta = mean.view(-1, 1) * weight  # (N, 1) float32
    levels = torch.arange(256, device=img.device).expand(len(beta), 256)
    lut = _fma_f32(levels, alpha, beta).clamp_(0, 255).floor_()
    return _apply_lut(img, lut.long())


def adjust_saturation(img: torch.Tensor, factor) -> torch.Tensor:
    """``mmcv.adjust_color(img, alpha=factor, backend='cv2')`` per image:
    blend with the gray image, rounded half to even (OpenCV's uint8
    ``addWeighted``)."""
    alpha = _per_image(factor, img, torch.float32)
    weight = _per_image([1 - float(f) for f in factor], img, torch.float32)
    beta = rgb_to_gray(img).float() * weight  # (N, 1, H, W) float32
    out = _fma_f32(img, alpha, beta)
    return out.round_().clamp_(0, 255).to(torch.uint8)


@functools.lru_cache(maxsize=None)
def _hsv_tables(device: torch.device) -> Tuple[torch.Tensor, torch.Tensor]:
    """OpenCV's ``sdiv_table`` and ``hdiv_table256`` (rounded to nearest,
    as ``saturate_cast<int>``), cached per device."""
    i = np.arange(256, dtype=np.float64)
    with np.errstate(divide='ignore'):
        sdiv = np.where(i > 0, np.round((255 << _HSV_SHIFT) / i), 0)
        hdiv = np.where(i > 0, np.round((256 << _HSV_SHIFT) / (6. * i)), 0)
    return (torch.as_tensor(sdiv, dtype=torch.int32, device=device),
            torch.as_tensor(hdiv, dtype=torch.int32, device=device))


def bgr_to_hsv_full(img: torch.Tensor) -> torch.Tensor:
    """OpenCV's ``COLOR_BGR2HSV_FULL`` on uint8: (N, 3, H, W) int32 H, S, V
    in [0, 255] (hue in 256 steps per turn), with its 12-bit tables."""
    sdiv, hdiv = _hsv_tables(img.device)
    b, g, r = img.int().unbind(1)  # (N, H, W)
    v = torch.maximum(torch.maximum(b, g), r)
    diff = v - torch.minimum(torch.minimum(b, g), r)
    half = 1 << (_HSV_SHIFT - 1)
    s = (diff * sdiv[v.long()] + half) >> _HSV_SHIFT
    h = torch.where(v == r, g - b,
                    torch.where(v == g, b - r + 2 * diff, r - g + 4 * diff))
    h = (h * hdiv[diff.long()] + half) >> _HSV_SHIFT
    h = torch.where(h < 0, h + 256, h).clamp_(0, 255)
    return torch.stack([h, s, v], 1)


def hsv_full_to_bgr(hsv: torch.Tensor) -> torch.Tensor:
    """OpenCV's ``COLOR_HSV2BGR_FULL`` on uint8 (float32 arithmetic, hue
    scale 6 / 255), (N, 3, H, W) int32 H, S, V -> uint8 BGR."""
    h, s, v = hsv.float().unbind(1)
    s = s * np.float32(1. / 255.)
    v = v * np.float32(1. / 255.)
    h = h * np.float32(6. / 255.)
    sector = torch.floor(h)
    f = h - sector
    sector = sector.long() % 6
    tab = torch.stack([v, v * (1 - s), v * (1 - s * f), v * (1 - s * (1 - f))],
                      1)
    index = torch.as_tensor(_HSV_SECTORS, device=hsv.device)[sector]
    bgr = torch.gather(tab, 1, index.permute(0, 3, 1, 2))  # (N, 3, H, W)
    bgr = torch.where((s == 0)[:, None], v[:, None], bgr)
    return (bgr * 255.).round_().clamp_(0, 255).to(torch.uint8)


def adjust_hue(img: torch.Tensor, hue) -> torch.Tensor:
    """``mmcv.adjust_hue(img, hue, backend='cv2')`` per image: shift the
    hue of OpenCV's uint8 HSV by ``int(hue * 255)`` (mod 256)."""
    shift = [hue_shift(float(h)) for h in hue]
    hsv = bgr_to_hsv_full(img)
    shift = _per_image(shift, img, torch.int32).view(-1, 1, 1)
    hsv[:, 0] = (hsv[:, 0] + shift) % 256
    return hsv_full_to_bgr(hsv)


def grayscale(img: torch.Tensor) -> torch.Tensor:
    """``mmcv.RandomGrayscale`` with ``keep_channels=True`` and FOLK's
    weights: a float64 weighted sum, truncated, on all three channels."""
    w = np.array(GRAYSCALE_WEIGHTS) / sum(GRAYSCALE_WEIGHTS)
    x = img.double()
    gray = (x[:, 0] * float(w[0]) + x[:, 1] * float(w[1])) + \
        x[:, 2] * float(w[2])  # (N, H, W), summed in numpy's order
    return gray.floor_().to(torch.uint8)[:, None].expand_as(img).clone()


def _box_blur_pass(x: torch.Tensor, weight: torch.Tensor,
                   vertical: bool) -> torch.Tensor:
    """One pass of Pillow's fixed-point box blur, exact in float32.

    Args:
        x (Tensor): (N, C, H, W) float32 holding integers <= 255.
        weight (Tensor): (2 * N * C, 1, 1, K) float32 tap weights: for every
            image and channel the high (``w >> 12``) and low (``w & 4095``)
            12 bits of the 24-bit weights, so that each depthwise
            convolution sums products < 2**24, exactly.
        vertical (bool): Blur along H instead of W.

    Returns:
        Tensor: (N, C, H, W) float32, ``(sum(x * w) + 2**23) >> 24``.
    """
    n, c, h, w = x.shape
    reach = (weight.shape[-1] - 1) // 2
    if vertical:
        weight = weight.transpose(-1, -2)
        pad = (0, 0, reach, reach)
    else:
        pad = (reach, reach, 0, 0)
    padded = F.pad(x.view(1, n * c, h, w), pad, mode='replicate')
    both = F.conv2d(padded, weight, groups=n * c).view(n, c, 2, h, w)
    high, low = both.unbind(2)
    # (high * 2**12 + low + 2**23) >> 24, in exact float32 steps
    low = torch.floor((low + float(1 << 23)) * (1. / (1 << 12)))
    return torch.floor((high + low) * (1. / (1 << 12)))


def box_blur_taps(sigma: Sequence[float]) -> np.ndarray:
    """Per-image tap weights of Pillow's box blur, (N, 2 * R + 1) int64.

    ``R`` is one more than the largest integer box radius of the batch; the
    ``2 * r + 1`` inner taps of an image weigh ``ww``, the next two ``fw``
    (see :func:`pil_box_blur_weights`), the others 0.
    """
    weights = [pil_box_blur_weights(float(s)) for s in sigma]
    reach = max(r for r, _, _ in weights) + 1
    taps = np.zeros((len(weights), 2 * reach + 1), np.int64)
    for i, (r, ww, fw) in enumerate(weights):
        taps[i, reach - r:reach + r + 1] = ww
        taps[i, reach - r - 1] = taps[i, reach + r + 1] = fw
    return taps


def gaussian_blur(img: torch.Tensor, sigma: Sequence[float]) -> torch.Tensor:
    """Pillow's ``ImageFilter.GaussianBlur(radius=sigma)`` per image (as
    MMPretrain's ``GaussianBlur``): three horizontal, then three vertical
    box blurs, each rounded to uint8, in Pillow's fixed-point arithmetic.

    Args:
        img (Tensor): (N, 3, H, W) uint8.
        sigma (Sequence[float]): (N,) radii, > 0.

    Returns:
        Tensor: (N, 3, H, W) uint8.
    """
    taps = box_blur_taps(sigma)  # (N, K) int64
    n, c = img.shape[:2]
    split = np.stack([taps >> 12, taps & 4095], 1)  # (N, 2, K)
    weight = torch.as_tensor(
        np.repeat(split[:, None], c, 1).reshape(n * c * 2, 1, 1, -1),
        dtype=torch.float32,
        device=img.device)
    x = img.float()
    for vertical in (False, ) * BLUR_PASSES + (True, ) * BLUR_PASSES:
        x = _box_blur_pass(x, weight, vertical)
    return x.to(torch.uint8)


def solarize(img: torch.Tensor,
             threshold: int = SOLARIZE_THRESHOLD) -> torch.Tensor:
    """``mmcv.solarize(img, thr=threshold)``: invert pixels >= threshold."""
    return torch.where(img < threshold, img, 255 - img)


_JITTER_FUNCS = dict(
    brightness=adjust_brightness,
    contrast=adjust_contrast,
    saturation=adjust_saturation,
    hue=adjust_hue)


# ---------------------------------------------------------------------------
# The whole recipe on a batch
# ---------------------------------------------------------------------------
def _apply_to(img: torch.Tensor, which: Sequence[int], func, *args):
    """Apply ``func`` to the images ``which`` (host indices) in place."""
    if len(which) == 0:
        return img
    index = torch.as_tensor(np.asarray(which), device=img.device)
    if len(which) == img.shape[0]:
        return func(img, *args)
    img[index] = func(img[index], *args)
    return img


def apply_photometric(img: torch.Tensor,
                      params: Sequence[dict],
                      check: bool = True) -> torch.Tensor:
    """Apply per-image photometric parameters to a batch.

    Per image, in this order: the colour jitter operations in the image's
    ``order`` (if ``jitter``), grayscale, Gaussian blur (``blur_sigma > 0``)
    and solarisation, as MMPretrain's ``ColorJitter`` -> ``RandomGrayscale``
    -> ``GaussianBlur`` -> ``Solarize`` chain. Images are grouped by
    operation on the host (from ``params``, no device synchronisation), so
    every image goes through its own operations only.

    Args:
        img (Tensor): (N, 3, H, W) uint8 BGR images.
        params (Sequence[dict]): N parameter dicts (:data:`PARAM_KEYS`).
        check (bool): Validate the dicts. Defaults to True.

    Returns:
        Tensor: (N, 3, H, W) uint8, a new tensor.
    """
    if img.dtype != torch.uint8 or img.dim() != 4 or img.shape[1] != 3:
        raise ValueError(f'apply_photometric needs (N, 3, H, W) uint8 '
                         f'images, got {tuple(img.shape)} {img.dtype}')
    if len(params) != img.shape[0]:
        raise ValueError(f'apply_photometric: {len(params)} parameter '
                         f'dicts for {img.shape[0]} images')
    if check:
        for i, p in enumerate(params):
            check_params(p, f'params[{i}]')
    out = img.clone()
    jitter = np.array([bool(p['jitter']) for p in params])
    order = np.array([[int(o) for o in p['order']] for p in params])
    for position in range(4):
        for op, name in enumerate(JITTER_OPS):
            which = np.flatnonzero(jitter & (order[:, position] == op))
            values = [params[i][name] for i in which]
            out = _apply_to(out, which, _JITTER_FUNCS[name], values)
    which = np.flatnonzero([bool(p['grayscale']) for p in params])
    out = _apply_to(out, which, grayscale)
    sigma = np.array([float(p['blur_sigma']) for p in params])
    which = np.flatnonzero(sigma > 0)
    out = _apply_to(out, which, gaussian_blur, sigma[which])
    which = np.flatnonzero([bool(p['solarize']) for p in params])
    return _apply_to(out, which, solarize)


def apply_photometric_cpu(img: np.ndarray,
                          params: dict,
                          jitter_backend: str = 'cv2') -> np.ndarray:
    """The same recipe on one (H, W, 3) uint8 BGR image with MMCV / Pillow,
    calling the functions MMPretrain's transforms call.

    This is FOLK's CPU path (``FOLKViews(photometric='cpu')``) and the
    reference of the batched operations.
    """
    import mmcv
    from PIL import Image, ImageFilter

    if params['jitter']:
        for op in params['order']:
            name = JITTER_OPS[int(op)]
            if name == 'brightness':
                img = mmcv.adjust_brightness(
                    img, params['brightness'], backend=jitter_backend)
            elif name == 'contrast':
                img = mmcv.adjust_contrast(
                    img, params['contrast'], backend=jitter_backend)
            elif name == 'saturation':
                img = mmcv.adjust_color(
                    img, alpha=params['saturation'], backend=jitter_backend)
            else:
                img = mmcv.adjust_hue(
                    img, params['hue'], backend=jitter_backend)
    if params['grayscale']:
        w = np.array(GRAYSCALE_WEIGHTS) / sum(GRAYSCALE_WEIGHTS)
        gray = (w * img).sum(axis=2).astype('uint8')
        img = np.dstack([gray] * 3)
    if params['blur_sigma'] > 0:
        pil = Image.fromarray(img).filter(
            ImageFilter.GaussianBlur(radius=float(params['blur_sigma'])))
        img = np.array(pil, dtype=img.dtype)
    if params['solarize']:
        img = mmcv.solarize(img, thr=SOLARIZE_THRESHOLD).astype(img.dtype)
    return img


def params_from_samples(
        data_samples: Sequence,
        key: str = 'photometric_params') -> Optional[List[List[dict]]]:
    """Per-view lists of parameter dicts from packed data samples.

    Returns:
        list[list[dict]] | None: ``[view][sample]``, or None when the
        samples carry no ``key``.

    Raises:
        KeyError: if only some samples carry ``key``.
        ValueError: if the samples disagree on the number of views.
    """
    if not data_samples:
        return None
    has = [key in s for s in data_samples]
    if not any(has):
        return None
    if not all(has):
        raise KeyError(f'"{key}" is missing from data sample '
                       f'{has.index(False)} but present in others')
    num_views = len(data_samples[0].get(key))
    per_view: List[List[dict]] = [[] for _ in range(num_views)]
    for i, s in enumerate(data_samples):
        views = s.get(key)
        if len(views) != num_views:
            raise ValueError(f'data sample {i} has {len(views)} "{key}" '
                             f'entries, sample 0 has {num_views}')
        for v, p in enumerate(views):
            per_view[v].append(p)
    return per_view


__all__ = [
    'PARAM_KEYS', 'JITTER_OPS', 'identity_params', 'check_params',
    'adjust_brightness', 'adjust_contrast', 'adjust_saturation', 'adjust_hue',
    'grayscale', 'gaussian_blur', 'solarize', 'rgb_to_gray', 'bgr_to_hsv_full',
    'hsv_full_to_bgr', 'pil_box_blur_weights', 'box_blur_taps',
    'apply_photometric', 'apply_photometric_cpu', 'params_from_samples'
]
