"""DINO's photometric augmentation, batched on any device.

FOLK's two views get DINO's photometric augmentation: colour jitter (the
four operations in a random order per image), grayscale, Gaussian blur and
solarisation (:mod:`folk.views.recipe`). MMPretrain runs these on CPU, one
image at a time, with MMCV's OpenCV-backed functions and Pillow's Gaussian
blur. This module applies the same operations to a batch of uint8 images on
the model's device, with one parameter set per image, and reproduces the CPU
functions' arithmetic (their fixed-point tables, intermediate uint8
rounding and truncation), so that the images agree with the CPU ones to the
level (tested on real images in ``tests/test_views/test_photometric.py``):

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

:func:`apply_photometric` is planned on the host and run on the device
(:func:`photometric_plan`, :func:`photometric_run`): all per-image factors
and the index arrays of the images each operation applies to travel in one
non-blocking copy (:class:`folk.views.transfer.HostPack`), so the device
path never waits for the device. Brightness, contrast and saturation of one
jitter position are one fused blend of all images (identity where another
operation is due); the hue shift is two lookups in OpenCV's HSV round trip
tabulated once per device over all 2**24 colours; the Gaussian blur is one
exact float64 convolution per box pass. The number of device operations
does not depend on the batch size. Images are BGR, the channel order of the
data pipeline that MMCV's functions assume.

The fused multiply-add of OpenCV's ``addWeighted`` (saturation, contrast),
MMCV's grayscale sum and the blur are evaluated in float64, so devices
without float64 (Apple MPS) are not supported.
"""
import functools
import math
from typing import Dict, List, Sequence, Tuple, Union

import numpy as np
import torch
import torch.nn.functional as F

from .recipe import (BLUR_PASSES, GRAYSCALE_WEIGHTS, JITTER_OPS, PARAM_KEYS,
                     PHOTOMETRIC_COLUMNS, SOLARIZE_THRESHOLD,
                     apply_photometric_cpu, check_params, identity_params,
                     photometric_array)
from .transfer import HostPack, autocast_off

# OpenCV's fixed-point RGB -> gray (``COLOR_BGR2GRAY`` on uint8): 15 bits.
_GRAY_B, _GRAY_G, _GRAY_R, _GRAY_SHIFT = 3735, 19235, 9798, 15
# OpenCV's uint8 RGB -> HSV (``COLOR_BGR2HSV_FULL``): 12-bit tables.
_HSV_SHIFT = 12
# (b, g, r) entries of the 4-value table of HSV -> RGB, per hue sector.
_HSV_SECTORS = ((1, 3, 0), (1, 0, 2), (3, 0, 1), (0, 2, 1), (0, 1, 3), (2, 1,
                                                                        0))
_COL = {name: i for i, name in enumerate(PHOTOMETRIC_COLUMNS)}


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


def check_photometric_array(params: np.ndarray,
                            where: str = 'photometric_params') -> None:
    """Raise a ValueError naming ``where``, the row and the column if an
    (N, 12) parameter array (:data:`PHOTOMETRIC_COLUMNS`) is bad."""
    if params.ndim != 2 or params.shape[1] != len(PHOTOMETRIC_COLUMNS):
        raise ValueError(f'{where} must be an (N, {len(PHOTOMETRIC_COLUMNS)}'
                         f') array, got shape {params.shape}')
    order = np.sort(params[:, 1:5], axis=1)
    checks = [
        ('order', (order != np.arange(4)).any(1), 'a permutation of 0-3'),
        ('hue', ~(np.abs(params[:, _COL['hue']]) <= 0.5), 'in [-0.5, 0.5]'),
    ] + [(key, ~(params[:, _COL[key]] >= 0), '>= 0')
         for key in ('brightness', 'contrast', 'saturation', 'blur_sigma')]
    for key, bad, rule in checks:
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise ValueError(f'{where}[{i}].{key} must be {rule}, got row '
                             f'{params[i].tolist()}')


# ---------------------------------------------------------------------------
# Single operations on (N, 3, H, W) uint8 BGR images, one factor per image.
# The references of the fused path, and usable on their own.
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
    with the image's mean gray level (rounded to an integer)."""
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


def _hsv_divisors() -> Tuple[np.ndarray, np.ndarray]:
    """OpenCV's ``sdiv_table`` and ``hdiv_table256`` (rounded to nearest,
    as ``saturate_cast<int>``)."""
    i = np.arange(256, dtype=np.float64)
    with np.errstate(divide='ignore'):
        sdiv = np.where(i > 0, np.round((255 << _HSV_SHIFT) / i), 0)
        hdiv = np.where(i > 0, np.round((256 << _HSV_SHIFT) / (6. * i)), 0)
    return sdiv.astype(np.int32), hdiv.astype(np.int32)


def bgr_to_hsv_full(img: torch.Tensor) -> torch.Tensor:
    """OpenCV's ``COLOR_BGR2HSV_FULL`` on uint8: (N, 3, H, W) int32 H, S, V
    in [0, 255] (hue in 256 steps per turn), with its 12-bit tables."""
    sdiv, hdiv = (torch.from_numpy(t).to(img.device) for t in _hsv_divisors())
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


@functools.lru_cache(maxsize=None)
def hue_tables(device: torch.device) -> Tuple[torch.Tensor, torch.Tensor]:
    """OpenCV's uint8 HSV round trip tabulated over all 2**24 colours.

    Returns:
        tuple[Tensor, Tensor]: ``to_hsv`` (256, 256, 256) int64, indexed by
        ``b, g, r``: the code ``(v * 256 + s) * 512 + h`` of the colour's
        HSV (:func:`bgr_to_hsv_full`); and ``to_bgr`` (2**25, 3) uint8, the
        BGR colour of every code (:func:`hsv_full_to_bgr`), with the hues
        256-511 repeating 0-255, so that a hue shift in [0, 255] is added
        to the code. Built once per device (128 + 96 MiB there).
    """
    code = torch.arange(1 << 24, device=device, dtype=torch.int32)
    planes = torch.stack([(code >> 16) & 255, (code >> 8) & 255, code & 255])
    grid = planes.view(1, 3, 4096, 4096)  # (b, g, r) or (v, s, h) planes
    hsv = bgr_to_hsv_full(grid.to(torch.uint8)).view(3, -1).long()
    to_hsv = ((hsv[2] << 8 | hsv[1]) << 9 | hsv[0]).view(256, 256, 256)
    bgr = hsv_full_to_bgr(grid.flip(1)).view(3, 1 << 16, 1, 256)
    to_bgr = bgr.expand(3, 1 << 16, 2, 256).reshape(3, -1).t().contiguous()
    return to_hsv, to_bgr


def _hue_lookup(img: torch.Tensor, shift: torch.Tensor) -> torch.Tensor:
    """The hue shift of :func:`adjust_hue` through :func:`hue_tables`.

    Args:
        img (Tensor): (n, 3, H, W) uint8 BGR.
        shift (Tensor): (n, 1, 1) int64 shifts in [0, 255].

    Returns:
        Tensor: (n, 3, H, W) uint8 (channels-last strides).
    """
    to_hsv, to_bgr = hue_tables(img.device)
    b, g, r = img.long().unbind(1)  # (n, H, W)
    return to_bgr[to_hsv[b, g, r] + shift].permute(0, 3, 1, 2)


def adjust_hue(img: torch.Tensor, hue) -> torch.Tensor:
    """``mmcv.adjust_hue(img, hue, backend='cv2')`` per image: shift the
    hue of OpenCV's uint8 HSV by ``int(hue * 255)`` (mod 256)."""
    shift = [hue_shift(float(h)) for h in hue]
    hsv = bgr_to_hsv_full(img)
    shift = _per_image(shift, img, torch.int32).view(-1, 1, 1)
    hsv[:, 0] = (hsv[:, 0] + shift) % 256
    return hsv_full_to_bgr(hsv)


def _gray_levels(img: torch.Tensor) -> torch.Tensor:
    """The (N, 1, H, W) uint8 levels of :func:`grayscale`."""
    w = np.array(GRAYSCALE_WEIGHTS) / sum(GRAYSCALE_WEIGHTS)
    x = img.double()
    gray = (x[:, 0] * float(w[0]) + x[:, 1] * float(w[1])) + \
        x[:, 2] * float(w[2])  # (N, H, W), summed in numpy's order
    return gray.floor_().to(torch.uint8)[:, None]


def grayscale(img: torch.Tensor) -> torch.Tensor:
    """``mmcv.RandomGrayscale`` with ``keep_channels=True`` and FOLK's
    weights: a float64 weighted sum, truncated, on all three channels."""
    return _gray_levels(img).expand_as(img).clone()


def _blur_weights(sigma: Sequence[float], channels: int) -> np.ndarray:
    """(N * C, 1, 1, K) float64 depthwise weights of :func:`gaussian_blur`:
    Pillow's 24-bit taps scaled by 2**-24 (exact)."""
    taps = box_blur_taps(sigma).astype(np.float64) * 2.0**-24  # (N, K)
    return np.repeat(taps, channels, 0)[:, None, None]


def _blur(x: torch.Tensor, weight: torch.Tensor,
          bias: torch.Tensor) -> torch.Tensor:
    """Pillow's three horizontal, then three vertical box blurs of an
    (N, C, H, W) float64 batch holding integers, exact: every pass is one
    float64 depthwise convolution (products and partial sums of 8-bit
    levels and 24-bit weights are exact in float64) with Pillow's rounding
    offset 2**23 as the bias, floored; the last floor is left to the
    caller's uint8 cast, which truncates."""
    n, c, h, w = x.shape
    reach = (weight.shape[-1] - 1) // 2
    x = x.reshape(1, n * c, h, w)
    passes = (False, ) * BLUR_PASSES + (True, ) * BLUR_PASSES
    for i, vertical in enumerate(passes):
        if vertical:
            padded = F.pad(x, (0, 0, reach, reach), mode='replicate')
            x = F.conv2d(padded, weight.transpose(-1, -2), bias, groups=n * c)
        else:
            padded = F.pad(x, (reach, reach, 0, 0), mode='replicate')
            x = F.conv2d(padded, weight, bias, groups=n * c)
        if i < len(passes) - 1:  # the last floor is the caller's uint8 cast
            x = x.floor_()
    return x.view(n, c, h, w)


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
    with autocast_off(img.device):
        n, c = img.shape[:2]
        pack = HostPack()
        pack.add('w', _blur_weights(sigma, c))
        pack.add('b', np.full(n * c, 0.5))
        dev = pack.to(img.device)
        return _blur(img.double(), dev['w'], dev['b']).to(torch.uint8)


def solarize(img: torch.Tensor,
             threshold: int = SOLARIZE_THRESHOLD) -> torch.Tensor:
    """``mmcv.solarize(img, thr=threshold)``: invert pixels >= threshold."""
    return torch.where(img < threshold, img, 255 - img)


# ---------------------------------------------------------------------------
# The whole recipe on a batch: planned on the host, run on the device
# ---------------------------------------------------------------------------
class PhotometricPlan:
    """What :func:`photometric_run` does, decided on the host.

    Attributes:
        num (int): images.
        blend (list[tuple[bool, bool, bool]]): per jitter position, whether
            any image needs the blend, the mean gray (contrast) and the
            rounding choice (saturation).
        hue (list[int]): per jitter position, images shifted in hue.
        gray (int), blur (int), solarize (bool): images grayed and blurred;
            whether any image is solarised.
    """

    def __init__(self, num: int) -> None:
        self.num = num
        self.blend: List[Tuple[bool, bool, bool]] = []
        self.hue: List[int] = []
        self.gray = 0
        self.blur = 0
        self.solarize = False


def photometric_plan(params: np.ndarray,
                     channels: int,
                     pack: HostPack,
                     prefix: str = 'pm') -> PhotometricPlan:
    """Host part of the batched recipe: add its arrays to ``pack``.

    Args:
        params (np.ndarray): (N, 12) float64 (:data:`PHOTOMETRIC_COLUMNS`),
            checked with :func:`check_photometric_array` by the caller.
        channels (int): image channels (3).
        pack (HostPack): receives the per-image factors and index arrays.
        prefix (str): prefix of the names in ``pack``.

    Returns:
        PhotometricPlan: the sizes the device part needs.
    """
    n = len(params)
    plan = PhotometricPlan(n)
    col = params.T
    jitter = col[_COL['jitter']] > 0
    order = params[:, 1:5].astype(np.int64)
    f32 = {name: col[_COL[name]].astype(np.float32) for name in JITTER_OPS[:3]}
    # OpenCV takes 1 - factor as a double and multiplies in float32
    one_minus = {
        name: (1.0 - col[_COL[name]]).astype(np.float32)
        for name in JITTER_OPS[:3]
    }
    for p in range(4):
        op = np.where(jitter, order[:, p], -1)  # -1: nothing
        alpha = np.ones(n, np.float32)
        w_mean = np.zeros(n, np.float32)
        w_gray = np.zeros(n, np.float32)
        for i, name in enumerate(JITTER_OPS[:3]):
            alpha = np.where(op == i, f32[name], alpha)
        w_mean = np.where(op == 1, one_minus['contrast'], w_mean)
        w_gray = np.where(op == 2, one_minus['saturation'], w_gray)
        need = ((op >= 0) & (op <= 2)).any()
        plan.blend.append((bool(need), bool(
            (op == 1).any()), bool((op == 2).any())))
        if need:
            pack.add(f'{prefix}_alpha{p}',
                     alpha.astype(np.float64).reshape(n, 1, 1, 1))
            pack.add(f'{prefix}_wmean{p}', w_mean.reshape(n, 1, 1, 1))
            pack.add(f'{prefix}_wgray{p}', w_gray.reshape(n, 1, 1, 1))
            pack.add(f'{prefix}_round{p}', (op == 2).reshape(n, 1, 1, 1))
        which = np.flatnonzero(op == 3)
        plan.hue.append(len(which))
        if len(which):
            shift = (
                np.trunc(col[_COL['hue']][which] * 255).astype(np.int64) % 256)
            pack.add(f'{prefix}_hue_idx{p}', which)
            pack.add(f'{prefix}_hue_shift{p}', shift.reshape(-1, 1, 1))
    which = np.flatnonzero(col[_COL['grayscale']] > 0)
    plan.gray = len(which)
    if len(which):
        pack.add(f'{prefix}_gray_idx', which)
    sigma = col[_COL['blur_sigma']]
    which = np.flatnonzero(sigma > 0)
    plan.blur = len(which)
    if len(which):
        pack.add(f'{prefix}_blur_idx', which)
        pack.add(f'{prefix}_blur_w', _blur_weights(sigma[which], channels))
        pack.add(f'{prefix}_blur_b', np.full(len(which) * channels, 0.5))
    solar = col[_COL['solarize']] > 0
    plan.solarize = bool(solar.any())
    if plan.solarize:
        thr = np.where(solar, SOLARIZE_THRESHOLD, 256).astype(np.int16)
        pack.add(f'{prefix}_sol_thr', thr.reshape(n, 1, 1, 1))
    return plan


_GRAY_WEIGHTS_2_15 = np.array([_GRAY_B, _GRAY_G, _GRAY_R],
                              np.float32) * np.float32(2.0**-_GRAY_SHIFT)


def _blend(img: torch.Tensor, dev: Dict[str, torch.Tensor], prefix: str,
           p: int, mean: bool, rounding: bool) -> torch.Tensor:
    """Brightness, contrast or saturation per image (identity for the
    others) in one fused blend: ``x * alpha + beta`` rounded once to
    float32 (OpenCV's fused ``addWeighted``, exact in float64), with
    ``beta`` the float32 product of ``1 - alpha`` and the mean gray level
    (contrast) or the pixel's gray level (saturation); then floored
    (brightness, contrast) or rounded half to even (saturation)."""
    # OpenCV's gray, exact in float32: weights scaled by 2**-15, + 0.5
    gray = (img * dev['gray_w']).sum(1, keepdim=True).add_(0.5).floor_()
    if mean:  # OpenCV's mean, rounded: float64 sum of integers, exact
        count = gray.shape[-1] * gray.shape[-2]
        level = (gray.sum(
            (1, 2, 3), keepdim=True, dtype=torch.float64) / count).round_()
        # computed in float64, rounded once to float32 (``out``)
        beta = torch.mul(
            level,
            dev[f'{prefix}_wmean{p}'],
            out=torch.empty(level.shape, device=img.device))
    else:
        beta = dev[f'{prefix}_wmean{p}']  # zeros
    beta = torch.addcmul(beta, gray, dev[f'{prefix}_wgray{p}'])  # float32
    # in float64 (the uint8 levels times float32 factors are exact), rounded
    # once to float32 (``out``)
    y = torch.addcmul(
        beta,
        img,
        dev[f'{prefix}_alpha{p}'],
        out=torch.empty(img.shape, device=img.device))
    if rounding:
        y = torch.where(dev[f'{prefix}_round{p}'], y.round(), y)
    # the uint8 cast truncates: the floor of brightness and contrast
    return y.clamp_(0, 255).to(torch.uint8)


def photometric_run(img: torch.Tensor,
                    dev: Dict[str, torch.Tensor],
                    plan: PhotometricPlan,
                    prefix: str = 'pm') -> torch.Tensor:
    """Device part of the batched recipe (see :func:`apply_photometric`).

    Args:
        img (Tensor): (N, 3, H, W) uint8 BGR.
        dev (dict): the device tensors of the ``pack`` filled by
            :func:`photometric_plan`, plus ``gray_w`` (:func:`device_consts`).
        plan (PhotometricPlan): from :func:`photometric_plan`.

    Returns:
        Tensor: (N, 3, H, W) uint8, a new tensor.
    """
    out = img
    n = plan.num

    def put(idx: torch.Tensor, values: torch.Tensor) -> torch.Tensor:
        # in place once ``out`` is a tensor of this function
        if out is img:
            return out.index_copy(0, idx, values)
        return out.index_copy_(0, idx, values)

    for p in range(4):
        need, mean, rounding = plan.blend[p]
        if need:
            out = _blend(out, dev, prefix, p, mean, rounding)
        shift = dev.get(f'{prefix}_hue_shift{p}')
        if plan.hue[p] == n:
            out = _hue_lookup(out, shift).contiguous()
        elif plan.hue[p]:
            idx = dev[f'{prefix}_hue_idx{p}']
            out = put(idx, _hue_lookup(out.index_select(0, idx), shift))
    if plan.gray:
        idx = dev[f'{prefix}_gray_idx']
        sub = out.index_select(0, idx)
        out = put(idx, _gray_levels(sub).expand_as(sub))
    if plan.blur:
        idx = dev[f'{prefix}_blur_idx']
        blurred = _blur(
            out.index_select(0, idx).double(), dev[f'{prefix}_blur_w'],
            dev[f'{prefix}_blur_b'])
        out = put(idx, blurred.to(torch.uint8))
    if plan.solarize:
        out = torch.where(out < dev[f'{prefix}_sol_thr'], out, 255 - out)
    if out is img:
        out = img.clone()
    return out


def device_consts(pack: HostPack) -> None:
    """Add the constants of :func:`photometric_run` to ``pack``."""
    pack.add('gray_w', _GRAY_WEIGHTS_2_15.reshape(1, 3, 1, 1))


def apply_photometric(img: torch.Tensor,
                      params: Union[Sequence[dict], np.ndarray],
                      check: bool = True) -> torch.Tensor:
    """Apply per-image photometric parameters to a batch.

    Per image, in this order: the colour jitter operations in the image's
    ``order`` (if ``jitter``), grayscale, Gaussian blur (``blur_sigma > 0``)
    and solarisation, as MMPretrain's ``ColorJitter`` -> ``RandomGrayscale``
    -> ``GaussianBlur`` -> ``Solarize`` chain. Planned on the host
    (:func:`photometric_plan`, one non-blocking copy) and run on the
    device (:func:`photometric_run`), outside autocast.

    Args:
        img (Tensor): (N, 3, H, W) uint8 BGR images.
        params (Sequence[dict] | np.ndarray): N parameter dicts
            (:data:`PARAM_KEYS`) or their (N, 12) array
            (:func:`folk.views.recipe.photometric_array`).
        check (bool): Validate the parameters. Defaults to True.

    Returns:
        Tensor: (N, 3, H, W) uint8, a new tensor.
    """
    if img.dtype != torch.uint8 or img.dim() != 4 or img.shape[1] != 3:
        raise ValueError(f'apply_photometric needs (N, 3, H, W) uint8 '
                         f'images, got {tuple(img.shape)} {img.dtype}')
    if len(params) != img.shape[0]:
        raise ValueError(f'apply_photometric: {len(params)} parameter '
                         f'dicts for {img.shape[0]} images')
    if not isinstance(params, np.ndarray):
        params = photometric_array(params, check)
    elif check:
        check_photometric_array(params, 'params')
    with autocast_off(img.device):
        pack = HostPack()
        device_consts(pack)
        plan = photometric_plan(params, img.shape[1], pack)
        return photometric_run(img, pack.to(img.device), plan)


__all__ = [
    'PARAM_KEYS', 'JITTER_OPS', 'identity_params', 'check_params',
    'check_photometric_array', 'adjust_brightness', 'adjust_contrast',
    'adjust_saturation', 'adjust_hue', 'grayscale', 'gaussian_blur',
    'solarize', 'rgb_to_gray', 'bgr_to_hsv_full', 'hsv_full_to_bgr',
    'hue_tables', 'pil_box_blur_weights', 'box_blur_taps', 'PhotometricPlan',
    'photometric_plan', 'photometric_run', 'device_consts',
    'apply_photometric', 'apply_photometric_cpu'
]
