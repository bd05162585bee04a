"""Frequency-domain filters of FOLK (Com / RCom) and MFM (low / high-pass).

All functions are batched (one call for the whole batch, no Python loop over
images), run on any device and compute FFTs in float32 whatever the input
dtype. Keep masks are in the layout of :func:`torch.fft.fft2` output (DC at
``[0, 0]``, not shifted) and are shared by the channels of an image.

Shapes: ``B`` images, ``C`` channels, ``H x W`` pixels (= frequency bins).
"""
from typing import Optional, Sequence, Tuple, Union

import torch

#: Filter kinds understood by :func:`frequency_keep_mask`.
FILTER_KINDS = ('com', 'rcom', 'lowpass', 'highpass')

Scalar = Union[float, int]


def _check_images(images: torch.Tensor, check_range: bool) -> None:
    if not isinstance(images, torch.Tensor):
        raise TypeError(f'images must be a torch.Tensor, got {type(images)}')
    if images.dim() != 4:
        raise ValueError('images must have shape (B, C, H, W), got a tensor '
                         f'of rank {images.dim()} {tuple(images.shape)}')
    if not images.is_floating_point():
        raise TypeError(f'images must be a float tensor in [0, 1], got dtype '
                        f'{images.dtype}')
    if check_range and images.numel() > 0:
        lo, hi = float(images.min()), float(images.max())
        if lo < 0 or hi > 1:
            raise ValueError(f'images must be in [0, 1], got values in '
                             f'[{lo:.4g}, {hi:.4g}]')


def _per_image(value: Union[Scalar, torch.Tensor], name: str, batch: int,
               device: torch.device) -> torch.Tensor:
    """Broadcast a scalar or (B,) value to a float32 (B,) tensor."""
    if value is None:
        raise ValueError(f'{name} is required for this filter kind')
    t = torch.as_tensor(value, dtype=torch.float32, device=device)
    if t.dim() == 0:
        t = t.expand(batch)
    if t.shape != (batch, ):
        raise ValueError(f'{name} must be a float or a ({batch},) tensor, got '
                         f'shape {tuple(t.shape)}')
    return t


def host_to_device(tensor: torch.Tensor, device) -> torch.Tensor:
    """Copy a small host tensor to ``device`` without a host-device sync.

    A copy from pageable host memory to a CUDA device makes the host wait
    until the GPU has run all work queued before it; from pinned memory
    with ``non_blocking=True`` it is queued on the stream like a kernel (the
    pinned source is kept until the copy has run by PyTorch's caching host
    allocator). Other devices get a plain copy.
    """
    device = torch.device(device)
    if device.type != 'cuda':
        return tensor.to(device)
    return tensor.pin_memory().to(device, non_blocking=True)


def conjugate_partner(x: torch.Tensor) -> torch.Tensor:
    """``x[..., -u mod H, -v mod W]``: each FFT bin's conjugate partner.

    For the spectrum ``F`` of a real image ``F[-u, -v] = conj(F[u, v])``;
    this lines up every bin (unshifted ``fft2`` layout, last two dims) with
    its partner.
    """
    return x.flip((-2, -1)).roll((1, 1), (-2, -1))


def signed_frequency_distance(height: int,
                              width: int,
                              device=None) -> torch.Tensor:
    """Distance of every FFT bin from DC, in frequency bins.

    Bin ``(u, v)`` of an unshifted spectrum has signed frequency
    ``u if u < ceil(H/2) else u - H`` (and likewise for ``v``), which is the
    position relative to the centre after ``fftshift``. MFM's circle is
    therefore ``distance < radius`` on this grid.

    Returns:
        Tensor: (H, W) float32 distances.
    """
    fu = torch.fft.fftfreq(height, d=1.0 / height, device=device)  # (H,)
    fv = torch.fft.fftfreq(width, d=1.0 / width, device=device)  # (W,)
    return torch.sqrt(fu[:, None]**2 + fv[None, :]**2).float()


def compression_keep_mask(images: torch.Tensor,
                          ratio: Union[Scalar, torch.Tensor]) -> torch.Tensor:
    """Com filter: keep the strongest ``ratio`` fraction of coefficients.

    The magnitude is averaged over channels and over each conjugate pair
    (``F[u, v]``, ``F[-u, -v]``; equal for a real image up to FFT rounding).
    With ``k = ceil(ratio * H * W)`` every coefficient whose magnitude is at
    least the k-th largest is kept, so ties (including the conjugate partner
    of every kept coefficient) are kept together and the mask is
    conjugate-symmetric.

    Args:
        images (Tensor): (B, C, H, W) float images.
        ratio (float | Tensor): fraction in (0, 1], scalar or (B,).

    Returns:
        Tensor: (B, H, W) bool, True = kept.
    """
    return _compression_keep_from_spectrum(
        torch.fft.fft2(images.float()), ratio)


def _compression_keep_from_spectrum(
        spec: torch.Tensor, ratio: Union[Scalar,
                                         torch.Tensor]) -> torch.Tensor:
    """Com keep mask from a (B, C, H, W) complex spectrum."""
    b, _, h, w = spec.shape
    # The ratio and k live on the host: checking them and choosing the topk
    # size then needs no device synchronisation.
    ratio = _per_image(ratio, 'ratio', b, 'cpu')
    if bool(((ratio <= 0) | (ratio > 1)).any()):
        raise ValueError(f'ratio must be in (0, 1], got {ratio.tolist()}')
    mag = spec.abs().mean(dim=1)  # (B, H, W)
    # The FFT of a real image is conjugate-symmetric only up to rounding
    # (|F[u, v]| and |F[-u, -v]| can differ in the last bit), which would let
    # the threshold split a conjugate pair and make the filtered image
    # complex. Averaging each magnitude with its partner's makes the pair
    # exactly equal (float addition is commutative), so pairs stay together.
    partner = conjugate_partner(mag)  # |F[-u, -v]|
    mag = ((mag + partner) * 0.5).flatten(1)  # (B, H*W)
    # k-th largest per image; k may differ between images. ``ratio`` went
    # through float32 (0.05 -> 0.0500000007), so ratio * H * W can overshoot
    # an exact integer (0.05 * 160 * 160 = 1280) and ceil would add one:
    # products within float32 rounding of an integer are snapped to it.
    prod = ratio.double() * h * w
    nearest = prod.round()
    tol = (prod * 1e-6).clamp(max=0.01)
    k = torch.where((prod - nearest).abs() <= tol, nearest, prod.ceil())
    k = k.long().clamp_(1, h * w)  # (B,) on the host
    # Only the largest max(k) values are needed: topk is much cheaper than a
    # full sort of the H*W magnitudes for the small ratios FOLK uses.
    top = mag.topk(int(k.max()), dim=1).values  # (B, max k), descending
    kth = host_to_device(k - 1, mag.device)  # (B,)
    threshold = top.gather(1, kth[:, None])  # (B, 1)
    return (mag >= threshold).view(b, h, w)


def radial_keep_mask(batch: int,
                     height: int,
                     width: int,
                     radius: Union[Scalar, torch.Tensor],
                     lowpass: Union[bool, torch.Tensor],
                     device=None) -> torch.Tensor:
    """MFM's ideal circular low-pass (or its complement, high-pass).

    A bin is inside the circle if its :func:`signed_frequency_distance` is
    below the radius. The radii and kinds are checked on the host (the
    pipeline's choices arrive on the CPU), so masks on the GPU are made
    without synchronisation.

    Args:
        batch (int): Number of masks ``B``.
        height (int): ``H``.
        width (int): ``W``.
        radius (float | Tensor): Radius in bins (> 0), scalar or (B,).
        lowpass (bool | Tensor): Keep the inside of the circle (low-pass)
            or the outside (high-pass); one bool or a (B,) bool tensor.
        device: Device of the masks. Defaults to the CPU.

    Returns:
        Tensor: (B, H, W) bool, True = kept.
    """
    device = torch.device('cpu' if device is None else device)
    radius = _per_image(radius, 'radius', batch, 'cpu')
    if bool((radius <= 0).any()):
        raise ValueError(f'radius must be > 0, got {radius.tolist()}')
    lowpass = torch.as_tensor(lowpass, dtype=torch.bool, device='cpu')
    if lowpass.dim() == 0:
        lowpass = lowpass.expand(batch)
    if lowpass.shape != (batch, ):
        raise ValueError(f'lowpass must be a bool or a ({batch},) tensor, '
                         f'got shape {tuple(lowpass.shape)}')
    dist = signed_frequency_distance(height, width, device)  # (H, W)
    inside = dist[None] < host_to_device(radius, device)[:, None, None]
    highpass = host_to_device(~lowpass, device)  # (B,)
    return inside ^ highpass[:, None, None]  # (B, H, W)


def frequency_keep_mask(images: torch.Tensor,
                        kind: str,
                        ratio: Optional[Union[Scalar, torch.Tensor]] = None,
                        radius: Optional[Union[Scalar, torch.Tensor]] = None,
                        check_range: bool = False) -> torch.Tensor:
    """Which frequencies of each image a filter keeps.

    Args:
        images (Tensor): (B, C, H, W) float images in [0, 1].
        kind (str): One of ``'com'``, ``'rcom'``, ``'lowpass'``,
            ``'highpass'``.
        ratio (float | Tensor, optional): Com/RCom fraction in (0, 1].
        radius (float | Tensor, optional): low/high-pass radius in bins.
        check_range (bool): Verify that values lie in [0, 1] (one device
            sync). Defaults to False.

    Returns:
        Tensor: (B, H, W) bool, True = kept, unshifted ``fft2`` layout.
    """
    _check_images(images, check_range)
    if kind not in FILTER_KINDS:
        raise ValueError(f'kind must be one of {FILTER_KINDS}, got {kind!r}')
    if kind in ('com', 'rcom'):
        keep = compression_keep_mask(images, ratio)
        return keep if kind == 'com' else ~keep
    b, _, h, w = images.shape
    return radial_keep_mask(b, h, w, radius, kind == 'lowpass', images.device)


def mixed_keep_mask(images: torch.Tensor,
                    kind_index: torch.Tensor,
                    param: torch.Tensor,
                    spectrum: Optional[torch.Tensor] = None) -> torch.Tensor:
    """Keep masks for a batch whose images use different filters.

    Args:
        images (Tensor): (B, C, H, W) float images in [0, 1].
        kind_index (Tensor): (B,) long, index into :data:`FILTER_KINDS`.
        param (Tensor): (B,) float, the ratio (Com/RCom) or radius
            (low/high-pass) of each image.
        spectrum (Tensor, optional): ``fft2(images.float())`` if already
            computed, to avoid a second FFT.

    Returns:
        Tensor: (B, H, W) bool, True = kept.
    """
    _check_images(images, check_range=False)
    b, _, h, w = images.shape
    device = images.device
    # Decisions are taken on host copies (the pipeline's choices arrive on
    # the CPU), so a batch on the GPU is filtered without synchronisation.
    kind_index = kind_index.detach().to('cpu', torch.long)
    param = param.detach().to('cpu', torch.float32)
    if kind_index.shape != (b, ) or param.shape != (b, ):
        raise ValueError(f'kind_index and param must have shape ({b},), got '
                         f'{tuple(kind_index.shape)} and {tuple(param.shape)}')
    if bool(((kind_index < 0) | (kind_index >= len(FILTER_KINDS))).any()):
        raise ValueError(f'kind_index must index FILTER_KINDS {FILTER_KINDS} '
                         f'(0..{len(FILTER_KINDS) - 1}), got '
                         f'{kind_index.tolist()}')
    is_com = kind_index <= 1  # com or rcom
    if bool(is_com.all()):  # FOLK's usual batch: no gather / scatter
        spec = spectrum if spectrum is not None else torch.fft.fft2(
            images.float())
        com = _compression_keep_from_spectrum(spec, param)  # (B, H, W)
        return com ^ host_to_device(kind_index == 1, device)[:, None, None]
    keep = torch.zeros(b, h, w, dtype=torch.bool, device=device)
    if bool(is_com.any()):
        idx = is_com.nonzero().squeeze(1)
        idx_dev = host_to_device(idx, device)
        spec = (
            spectrum[idx_dev] if spectrum is not None else torch.fft.fft2(
                images[idx_dev].float()))
        com = _compression_keep_from_spectrum(spec, param[idx])  # (b', H, W)
        invert = host_to_device(kind_index[idx] == 1, device)  # (b',)
        keep[idx_dev] = com ^ invert[:, None, None]
    if bool((~is_com).any()):
        idx = (~is_com).nonzero().squeeze(1)
        keep[host_to_device(idx, device)] = radial_keep_mask(
            len(idx), h, w, param[idx], kind_index[idx] == 2, device)
    return keep


def apply_frequency_mask(
        images: torch.Tensor,
        keep: torch.Tensor,
        spectrum: Optional[torch.Tensor] = None) -> torch.Tensor:
    """Filter images: ``real(ifft2(fft2(images) * keep))`` clamped to [0, 1].

    Args:
        images (Tensor): (B, C, H, W) float images in [0, 1].
        keep (Tensor): (B, H, W) bool keep mask (shared by channels).
        spectrum (Tensor, optional): ``fft2(images.float())`` if already
            computed.

    Returns:
        Tensor: filtered images, same shape and dtype as ``images``.
    """
    _check_images(images, check_range=False)
    b, _, h, w = images.shape
    if keep.shape != (b, h, w):
        raise ValueError(f'keep must have shape {(b, h, w)}, got '
                         f'{tuple(keep.shape)}')
    if spectrum is None:
        spectrum = torch.fft.fft2(images.float())  # (B, C, H, W) complex64
    spec = spectrum * keep[:, None].to(spectrum.real.dtype)
    out = torch.fft.ifft2(spec).real.clamp_(0, 1)
    return out.to(images.dtype)


def filter_images(images: torch.Tensor, kind_index: torch.Tensor,
                  param: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
    """Choose and apply a filter per image with a single forward FFT.

    Args:
        images (Tensor): (B, C, H, W) float images in [0, 1].
        kind_index (Tensor): (B,) index into :data:`FILTER_KINDS`.
        param (Tensor): (B,) ratio or radius of each image.

    Returns:
        tuple[Tensor, Tensor]: filtered images (B, C, H, W) in the input
        dtype, and keep masks (B, H, W) bool.
    """
    _check_images(images, check_range=False)
    # FFTs in float32 even inside an autocast region (AMP training).
    with torch.autocast(images.device.type, enabled=False):
        spectrum = torch.fft.fft2(images.float())  # (B, C, H, W)
        keep = mixed_keep_mask(images, kind_index, param, spectrum)
        return apply_frequency_mask(images, keep, spectrum), keep


def kind_to_index(kinds: Sequence[str]) -> torch.Tensor:
    """Map filter kind names to indices of :data:`FILTER_KINDS`."""
    try:
        return torch.tensor([FILTER_KINDS.index(k) for k in kinds],
                            dtype=torch.long)
    except ValueError as err:
        raise ValueError(f'unknown filter kind in {list(kinds)}; expected '
                         f'one of {FILTER_KINDS}') from err


def mfm_radius(size: int, radius_at_224: float = 16.0) -> float:
    """MFM's radius (16 bins at 224 px) scaled to another resolution."""
    return radius_at_224 * size / 224.0


__all__ = [
    'FILTER_KINDS', 'conjugate_partner', 'frequency_keep_mask',
    'apply_frequency_mask', 'compression_keep_mask', 'radial_keep_mask',
    'mixed_keep_mask', 'filter_images', 'signed_frequency_distance',
    'kind_to_index', 'mfm_radius'
]
