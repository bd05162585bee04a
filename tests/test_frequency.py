"""Tests of :mod:`folk.frequency` (Com / RCom / MFM low- and high-pass).

The reference implementation below uses NumPy's float64 FFT only (no folk
code) and follows FOLK_METHOD.md section 3: Com keeps the coefficients whose
channel-averaged magnitude is among the top ``k = ceil(ratio * H * W)``,
ties included, RCom is its complement, low/high-pass is MFM's centred circle.
"""
import math
import os.path as osp
from fractions import Fraction

import cv2
import numpy as np
import pytest
import torch

from folk import frequency as F

RATIOS = (0.005, 0.01, 0.05)
NUM_IMAGES = 8


# ---------------------------------------------------------------------------
# Independent NumPy reference
# ---------------------------------------------------------------------------
def np_partner(a: np.ndarray) -> np.ndarray:
    """``a[..., -u mod H, -v mod W]``: the conjugate partner of every bin."""
    h, w = a.shape[-2:]
    return a[..., (-np.arange(h)) % h, :][..., (-np.arange(w)) % w]


def ref_k(ratio: float, h: int, w: int) -> int:
    """``ceil(ratio * H * W)`` computed exactly on the decimal ratio."""
    return math.ceil(Fraction(str(ratio)) * h * w)


def ref_com_keep(x: np.ndarray, ratio: float) -> np.ndarray:
    """Com keep mask of one (C, H, W) image, float64 FFT."""
    spec = np.fft.fft2(x.astype(np.float64), axes=(-2, -1))
    mag = np.abs(spec).mean(axis=0)
    # |F[u, v]| == |F[-u, -v]| for a real image; average out FFT rounding.
    mag = 0.5 * (mag + np_partner(mag))
    h, w = mag.shape
    threshold = np.sort(mag, axis=None)[::-1][ref_k(ratio, h, w) - 1]
    return mag >= threshold


def ref_radial_keep(h: int, w: int, radius: float,
                    lowpass: bool) -> np.ndarray:
    """MFM's circle: centred (fftshift) distance < radius, then ifftshift."""
    cu, cv = h // 2, w // 2  # DC position after np.fft.fftshift
    uu, vv = np.meshgrid(np.arange(h), np.arange(w), indexing='ij')
    inside_centred = np.sqrt((uu - cu)**2 + (vv - cv)**2) < radius
    inside = np.fft.ifftshift(inside_centred)
    return inside if lowpass else ~inside


def ref_keep(x: np.ndarray, kind: str, param: float) -> np.ndarray:
    h, w = x.shape[-2:]
    if kind == 'com':
        return ref_com_keep(x, param)
    if kind == 'rcom':
        return ~ref_com_keep(x, param)
    return ref_radial_keep(h, w, param, kind == 'lowpass')


def ref_filter(x: np.ndarray, keep: np.ndarray) -> np.ndarray:
    """``clip(real(ifft2(fft2(x) * keep)), 0, 1)`` in float64."""
    spec = np.fft.fft2(x.astype(np.float64), axes=(-2, -1))
    return np.clip(np.real(np.fft.ifft2(spec * keep, axes=(-2, -1))), 0, 1)


# ---------------------------------------------------------------------------
# Real images
# ---------------------------------------------------------------------------
def load_rgb01(path: str) -> np.ndarray:
    """(3, H, W) float32 RGB in [0, 1]."""
    bgr = cv2.imread(path, cv2.IMREAD_COLOR)
    assert bgr is not None, path
    rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
    return np.ascontiguousarray(rgb.transpose(2, 0, 1)).astype(
        np.float32) / 255.


@pytest.fixture(scope='module')
def images(imagenette_root):
    """NUM_IMAGES real images spread over the classes, (3, 128, 128)."""
    with open(osp.join(imagenette_root, 'train.txt')) as f:
        rel = [line.split()[0] for line in f if line.strip()]
    step = len(rel) // NUM_IMAGES
    return [
        load_rgb01(osp.join(imagenette_root, rel[i * step]))
        for i in range(NUM_IMAGES)
    ]


@pytest.fixture(scope='module')
def image_set(images):
    """Full images plus a non-square (127x96) and an odd (65x65) crop."""
    return list(images) + [
        np.ascontiguousarray(images[0][:, :127, 5:101]),
        np.ascontiguousarray(images[1][:, 30:95, 10:75]),
    ]


def to_batch(x: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(x)[None]


def resize01(x: np.ndarray, size: int) -> np.ndarray:
    out = cv2.resize(
        x.transpose(1, 2, 0), (size, size), interpolation=cv2.INTER_AREA)
    return np.ascontiguousarray(np.clip(out, 0, 1).transpose(2, 0, 1))


def partner(keep: torch.Tensor) -> torch.Tensor:
    h, w = keep.shape[-2:]
    return keep[..., (-torch.arange(h)) % h, :][..., (-torch.arange(w)) % w]


# ---------------------------------------------------------------------------
# Agreement with the NumPy reference
# ---------------------------------------------------------------------------
def test_image_set_shapes(image_set):
    shapes = [x.shape for x in image_set]
    assert shapes[:NUM_IMAGES] == [(3, 128, 128)] * NUM_IMAGES
    assert shapes[NUM_IMAGES:] == [(3, 127, 96), (3, 65, 65)]
    assert all(x.dtype == np.float32 and 0 <= x.min() and x.max() <= 1
               for x in image_set)


@pytest.mark.parametrize('ratio', RATIOS)
def test_com_rcom_masks_match_numpy(image_set, ratio):
    for x in image_set:
        ref = ref_com_keep(x, ratio)
        com = F.frequency_keep_mask(to_batch(x), 'com', ratio=ratio)
        rcom = F.frequency_keep_mask(to_batch(x), 'rcom', ratio=ratio)
        assert com.shape == (1, ) + x.shape[1:] and com.dtype == torch.bool
        np.testing.assert_array_equal(com[0].numpy(), ref)
        np.testing.assert_array_equal(rcom[0].numpy(), ~ref)
        np.testing.assert_array_equal(
            F.compression_keep_mask(to_batch(x), ratio)[0].numpy(), ref)


@pytest.mark.parametrize('size', [80, 160])
def test_com_k_is_exact_ceil_for_integer_products(images, size):
    """0.05 * 80 * 80 = 320 and 0.05 * 160 * 160 = 1280 exactly: k must not
    become 321 / 1281 through the float32 ratio (0.0500000007)."""
    for x in images[:4]:
        x = resize01(x, size)
        np.testing.assert_array_equal(
            F.frequency_keep_mask(to_batch(x), 'com', ratio=0.05)[0].numpy(),
            ref_com_keep(x, 0.05))


@pytest.mark.parametrize('radius', [1.0, 4.5, 8.0, 16.0, F.mfm_radius(128)])
def test_radial_masks_match_numpy(image_set, radius):
    for x in (image_set[0], image_set[-2], image_set[-1]):
        h, w = x.shape[1:]
        for kind in ('lowpass', 'highpass'):
            keep = F.frequency_keep_mask(to_batch(x), kind, radius=radius)
            ref = ref_radial_keep(h, w, radius, kind == 'lowpass')
            np.testing.assert_array_equal(keep[0].numpy(), ref)
            np.testing.assert_array_equal(
                F.radial_keep_mask(1, h, w, radius, kind == 'lowpass')[0], ref)


FILTER_CASES = [('com', r)
                for r in RATIOS] + [('rcom', r)
                                    for r in RATIOS] + [('lowpass', 4.0),
                                                        ('lowpass', 16.0),
                                                        ('highpass', 4.0),
                                                        ('highpass', 16.0)]


def test_filtered_images_match_numpy(image_set):
    for x in image_set:
        for kind, param in FILTER_CASES:
            ref_keep_mask = ref_keep(x, kind, param)
            expected = ref_filter(x, ref_keep_mask)
            out = F.apply_frequency_mask(
                to_batch(x),
                torch.from_numpy(ref_keep_mask)[None])
            assert out.shape == (1, ) + x.shape and out.dtype == torch.float32
            np.testing.assert_allclose(
                out[0].numpy(),
                expected,
                atol=1e-5,
                rtol=0,
                err_msg=f'{kind} {param}')


def test_filter_images_matches_numpy_on_mixed_batch(images):
    batch = torch.from_numpy(np.stack(images))  # (8, 3, 128, 128)
    cases = [FILTER_CASES[i % len(FILTER_CASES)] for i in range(len(images))]
    kinds = F.kind_to_index([k for k, _ in cases])
    params = torch.tensor([p for _, p in cases])
    out, keep = F.filter_images(batch, kinds, params)
    assert out.shape == batch.shape and keep.shape == (8, 128, 128)
    for i, (x, (kind, param)) in enumerate(zip(images, cases)):
        ref_keep_mask = ref_keep(x, kind, param)
        np.testing.assert_array_equal(keep[i].numpy(), ref_keep_mask)
        np.testing.assert_allclose(
            out[i].numpy(), ref_filter(x, ref_keep_mask), atol=1e-5, rtol=0)


# ---------------------------------------------------------------------------
# Properties
# ---------------------------------------------------------------------------
@pytest.mark.parametrize('ratio', RATIOS + (0.3, 1.0))
def test_com_keeps_at_least_ceil_ratio(image_set, ratio):
    for x in image_set:
        h, w = x.shape[1:]
        com = F.frequency_keep_mask(to_batch(x), 'com', ratio=ratio)
        rcom = F.frequency_keep_mask(to_batch(x), 'rcom', ratio=ratio)
        k = ref_k(ratio, h, w)
        assert int(com.sum()) >= k
        # only ties (conjugate pairs) can add to k: at most a few extra
        assert int(com.sum()) <= k + 2
        assert int(rcom.sum()) == h * w - int(com.sum())


def test_com_mask_is_conjugate_symmetric(image_set):
    for x in image_set:
        for ratio in RATIOS:
            for kind in ('com', 'rcom'):
                keep = F.frequency_keep_mask(to_batch(x), kind, ratio=ratio)
                assert torch.equal(keep, partner(keep)), (x.shape, ratio)
    # the MFM circle is symmetric too (odd and even sizes)
    for h, w in ((224, 224), (127, 96), (65, 65)):
        keep = F.radial_keep_mask(1, h, w, 16.0, lowpass=True)
        assert torch.equal(keep, partner(keep))


def test_com_and_rcom_partition_the_spectrum(image_set):
    for x in image_set:
        for ratio in RATIOS:
            com = F.frequency_keep_mask(to_batch(x), 'com', ratio=ratio)
            rcom = F.frequency_keep_mask(to_batch(x), 'rcom', ratio=ratio)
            assert not bool((com & rcom).any())
            assert bool((com | rcom).all())
            # Com keeps the strongest coefficients: DC (mean brightness) is
            # the largest one of a natural image.
            assert bool(com[0, 0, 0]) and not bool(rcom[0, 0, 0])


def test_filtered_image_of_real_image_is_real(image_set):
    for x in image_set:
        for kind, param in FILTER_CASES:
            keep = F.frequency_keep_mask(
                to_batch(x),
                kind,
                ratio=param if 'com' in kind else None,
                radius=param if 'pass' in kind else None)
            # unclamped inverse transform, float64 to isolate the mask
            z = np.fft.ifft2(
                np.fft.fft2(x.astype(np.float64), axes=(-2, -1)) *
                keep[0].numpy(),
                axes=(-2, -1))
            rel = np.abs(z.imag).max() / max(np.abs(z.real).max(), 1e-12)
            assert rel < 1e-5, (x.shape, kind, param, rel)


def test_lowpass_16_on_224_is_mfm_circle(images):
    x = resize01(images[0], 224)
    keep = F.frequency_keep_mask(to_batch(x), 'lowpass', radius=16)[0]
    # MFM: centred spectrum, circle of radius 16 around (112, 112)
    yy, xx = np.meshgrid(np.arange(224), np.arange(224), indexing='ij')
    circle_centred = np.sqrt((yy - 112)**2 + (xx - 112)**2) < 16
    mfm = np.fft.ifftshift(circle_centred)
    np.testing.assert_array_equal(keep.numpy(), mfm)
    np.testing.assert_array_equal(
        np.fft.fftshift(keep.numpy()), circle_centred)
    assert bool(keep[0, 0])  # DC kept
    # about 1.6 % of the spectrum (FOLK_METHOD section 3)
    assert 0.015 < keep.float().mean().item() < 0.017
    high = F.frequency_keep_mask(to_batch(x), 'highpass', radius=16)[0]
    np.testing.assert_array_equal(high.numpy(), ~mfm)
    assert F.mfm_radius(224) == 16.0 and F.mfm_radius(112) == 8.0
    assert F.mfm_radius(64, radius_at_224=32) == pytest.approx(64 * 32 / 224)


def test_signed_frequency_distance():
    for h, w in ((8, 8), (7, 10), (65, 65)):
        dist = F.signed_frequency_distance(h, w)
        fu = np.fft.fftfreq(h) * h
        fv = np.fft.fftfreq(w) * w
        ref = np.sqrt(fu[:, None]**2 + fv[None, :]**2)
        assert dist.shape == (h, w) and dist.dtype == torch.float32
        np.testing.assert_allclose(dist.numpy(), ref, rtol=1e-6)
        assert float(dist[0, 0]) == 0.0


def test_mixed_kinds_equal_per_kind_calls(images):
    batch = torch.from_numpy(np.stack(images))
    kinds = [
        'com', 'rcom', 'lowpass', 'highpass', 'rcom', 'com', 'highpass',
        'lowpass'
    ]
    params = [0.005, 0.01, 16.0, 9.0, 0.05, 0.05, 4.0, 2.5]
    kind_index = F.kind_to_index(kinds)
    param = torch.tensor(params)
    mixed = F.mixed_keep_mask(batch, kind_index, param)
    spectrum = torch.fft.fft2(batch.float())
    mixed_spec = F.mixed_keep_mask(batch, kind_index, param, spectrum)
    out, keep = F.filter_images(batch, kind_index, param)
    assert torch.equal(mixed, mixed_spec) and torch.equal(mixed, keep)
    for i, (kind, p) in enumerate(zip(kinds, params)):
        xi = batch[i:i + 1]
        single = F.frequency_keep_mask(
            xi,
            kind,
            ratio=p if kind in ('com', 'rcom') else None,
            radius=p if kind in ('lowpass', 'highpass') else None)
        assert torch.equal(mixed[i:i + 1], single), kind
        torch.testing.assert_close(
            out[i:i + 1],
            F.apply_frequency_mask(xi, single),
            atol=1e-6,
            rtol=0)


def test_mixed_batch_of_one_kind_and_spectrum_reuse(images):
    batch = torch.from_numpy(np.stack(images[:4]))
    for kind in F.FILTER_KINDS:
        idx = F.kind_to_index([kind] * 4)
        param = torch.full((4, ), 0.01 if 'com' in kind else 6.0)
        out, keep = F.filter_images(batch, idx, param)
        spectrum = torch.fft.fft2(batch)
        again = F.apply_frequency_mask(batch, keep, spectrum)
        torch.testing.assert_close(out, again, atol=0, rtol=0)


def test_per_image_ratio_and_radius_tensors(images):
    batch = torch.from_numpy(np.stack(images[:6]))
    ratios = torch.tensor([0.005, 0.01, 0.05, 0.05, 0.01, 0.005])
    for kind in ('com', 'rcom'):
        keep = F.frequency_keep_mask(batch, kind, ratio=ratios)
        for i in range(6):
            single = F.frequency_keep_mask(
                batch[i:i + 1], kind, ratio=float(ratios[i]))
            assert torch.equal(keep[i:i + 1], single)
        # different ratios -> different kept fractions, as requested
        counts = keep.flatten(1).sum(1)
        if kind == 'com':
            assert counts[2] > counts[1] > counts[0]
    radii = torch.tensor([2.0, 4.0, 8.0, 16.0, 3.5, 1.0])
    keep = F.frequency_keep_mask(batch, 'lowpass', radius=radii)
    for i in range(6):
        np.testing.assert_array_equal(
            keep[i].numpy(), ref_radial_keep(128, 128, float(radii[i]), True))


@pytest.mark.parametrize('dtype,atol', [(torch.float16, 1e-3),
                                        (torch.bfloat16, 8e-3)])
def test_half_precision_inputs(images, dtype, atol):
    batch = torch.from_numpy(np.stack(images[:4])).to(dtype)
    as_fp32 = batch.float()  # the very same values in float32
    kinds = F.kind_to_index(['com', 'rcom', 'lowpass', 'highpass'])
    params = torch.tensor([0.01, 0.05, 8.0, 8.0])
    out, keep = F.filter_images(batch, kinds, params)
    out32, keep32 = F.filter_images(as_fp32, kinds, params)
    assert out.dtype == dtype and out.shape == batch.shape
    assert keep.dtype == torch.bool
    assert torch.equal(keep, keep32)  # the FFT runs in float32 either way
    # only the final rounding to the half dtype differs
    torch.testing.assert_close(out.float(), out32, atol=atol, rtol=0)
    for kind, ratio in (('com', 0.01), ('rcom', 0.05)):
        m = F.frequency_keep_mask(batch, kind, ratio=ratio)
        assert torch.equal(m,
                           F.frequency_keep_mask(as_fp32, kind, ratio=ratio))
    applied = F.apply_frequency_mask(batch, keep)
    assert applied.dtype == dtype
    torch.testing.assert_close(applied.float(), out32, atol=atol, rtol=0)
    # and close to filtering the original float32 images
    orig = torch.from_numpy(np.stack(images[:4]))
    low = F.apply_frequency_mask(orig, keep)
    assert (out.float() - low).abs().mean() < atol


def test_filter_images_under_autocast_is_float32(images):
    batch = torch.from_numpy(np.stack(images[:2]))
    kinds = F.kind_to_index(['com', 'highpass'])
    params = torch.tensor([0.01, 16.0])
    ref_out, ref_keep = F.filter_images(batch, kinds, params)
    with torch.autocast('cpu', dtype=torch.bfloat16):
        out, keep = F.filter_images(batch, kinds, params)
    assert out.dtype == torch.float32
    assert torch.equal(keep, ref_keep)
    torch.testing.assert_close(out, ref_out, atol=0, rtol=0)


def test_batched_equals_per_image(image_set):
    batch = torch.from_numpy(np.stack(image_set[:NUM_IMAGES]))
    for kind in F.FILTER_KINDS:
        kw = dict(ratio=0.01) if 'com' in kind else dict(radius=8.0)
        keep = F.frequency_keep_mask(batch, kind, **kw)
        out = F.apply_frequency_mask(batch, keep)
        for i in range(NUM_IMAGES):
            xi = batch[i:i + 1]
            ki = F.frequency_keep_mask(xi, kind, **kw)
            assert torch.equal(keep[i:i + 1], ki), (kind, i)
            torch.testing.assert_close(
                out[i:i + 1],
                F.apply_frequency_mask(xi, ki),
                atol=1e-6,
                rtol=0)


def test_output_range_and_identity(images):
    batch = torch.from_numpy(np.stack(images[:3]))
    out, _ = F.filter_images(batch, F.kind_to_index(['rcom'] * 3),
                             torch.full((3, ), 0.005))
    assert float(out.min()) >= 0 and float(out.max()) <= 1
    # keeping everything (com ratio 1) returns the image
    full = F.frequency_keep_mask(batch, 'com', ratio=1.0)
    assert bool(full.all())
    torch.testing.assert_close(
        F.apply_frequency_mask(batch, full), batch, atol=1e-5, rtol=0)
    # keeping only DC gives the per-channel mean everywhere
    dc = torch.zeros(3, 128, 128, dtype=torch.bool)
    dc[:, 0, 0] = True
    flat = F.apply_frequency_mask(batch, dc)
    torch.testing.assert_close(
        flat,
        batch.mean(dim=(2, 3), keepdim=True).expand_as(batch),
        atol=1e-5,
        rtol=0)


def test_kind_to_index():
    assert F.FILTER_KINDS == ('com', 'rcom', 'lowpass', 'highpass')
    idx = F.kind_to_index(['highpass', 'com', 'lowpass', 'rcom'])
    assert idx.dtype == torch.long and idx.tolist() == [3, 0, 2, 1]


# ---------------------------------------------------------------------------
# Bad input
# ---------------------------------------------------------------------------
def _img(*shape, dtype=torch.float32):
    return torch.rand(
        *shape, generator=torch.Generator().manual_seed(0)).to(dtype)


@pytest.mark.parametrize('fn', [
    lambda x: F.frequency_keep_mask(x, 'com', ratio=0.1),
    lambda x: F.apply_frequency_mask(x, torch.ones(1, 8, 8, dtype=bool)),
    lambda x: F.filter_images(x, torch.tensor([0]), torch.tensor([0.1])),
    lambda x: F.mixed_keep_mask(x, torch.tensor([0]), torch.tensor([0.1])),
])
def test_wrong_rank(fn):
    for x in (_img(3, 8, 8), _img(1, 1, 3, 8, 8), _img(8, 8)):
        with pytest.raises(ValueError, match=r'images must have shape'):
            fn(x)


def test_integer_dtype_and_non_tensor():
    with pytest.raises(TypeError, match=r'images must be a float tensor'):
        F.frequency_keep_mask(
            torch.zeros(1, 3, 8, 8, dtype=torch.uint8), 'com', ratio=0.1)
    with pytest.raises(TypeError, match=r'images must be a float tensor'):
        F.filter_images(
            torch.zeros(1, 3, 8, 8, dtype=torch.int64), torch.tensor([0]),
            torch.tensor([0.1]))
    with pytest.raises(TypeError, match=r'images must be a torch.Tensor'):
        F.frequency_keep_mask(
            np.zeros((1, 3, 8, 8), np.float32), 'com', ratio=0.1)


@pytest.mark.parametrize('bad', [-0.1, 1.5, 255.0])
def test_values_outside_unit_range(bad):
    x = _img(2, 3, 8, 8)
    x[1, 0, 2, 3] = bad
    with pytest.raises(ValueError, match=r'images must be in \[0, 1\]'):
        F.frequency_keep_mask(x, 'com', ratio=0.1, check_range=True)
    # without check_range (the default) nothing is checked: no device sync
    assert F.frequency_keep_mask(x, 'com', ratio=0.1).shape == (2, 8, 8)


@pytest.mark.parametrize('ratio', [0, 0.0, 1.5, -0.01])
def test_bad_ratio(ratio):
    x = _img(2, 3, 8, 8)
    for kind in ('com', 'rcom'):
        with pytest.raises(ValueError, match=r'ratio must be in \(0, 1\]'):
            F.frequency_keep_mask(x, kind, ratio=ratio)
    with pytest.raises(ValueError, match=r'ratio must be in \(0, 1\]'):
        F.compression_keep_mask(x, torch.tensor([0.1, ratio]))
    with pytest.raises(ValueError, match=r'ratio must be in \(0, 1\]'):
        F.filter_images(x, torch.tensor([0, 1]), torch.tensor([0.1, ratio]))


def test_missing_or_misshaped_ratio():
    x = _img(2, 3, 8, 8)
    with pytest.raises(ValueError, match=r'ratio is required'):
        F.frequency_keep_mask(x, 'com')
    with pytest.raises(ValueError, match=r'ratio must be a float or a \(2,\)'):
        F.frequency_keep_mask(x, 'com', ratio=torch.tensor([0.1, 0.1, 0.1]))
    with pytest.raises(ValueError, match=r'radius is required'):
        F.frequency_keep_mask(x, 'lowpass')


@pytest.mark.parametrize('kind', ['Com', 'band', '', 'low'])
def test_unknown_kind(kind):
    with pytest.raises(ValueError, match=r'kind must be one of'):
        F.frequency_keep_mask(_img(1, 3, 8, 8), kind, ratio=0.1, radius=2)
    with pytest.raises(ValueError, match=r'unknown filter kind'):
        F.kind_to_index(['com', kind])


@pytest.mark.parametrize('radius', [0, 0.0, -1.0])
def test_bad_radius(radius):
    x = _img(2, 3, 8, 8)
    for kind in ('lowpass', 'highpass'):
        with pytest.raises(ValueError, match=r'radius must be > 0'):
            F.frequency_keep_mask(x, kind, radius=radius)
    with pytest.raises(ValueError, match=r'radius must be > 0'):
        F.radial_keep_mask(2, 8, 8, radius, lowpass=True)
    with pytest.raises(ValueError, match=r'radius must be > 0'):
        F.filter_images(x, torch.tensor([2, 3]), torch.tensor([4.0, radius]))


@pytest.mark.parametrize('shape', [(2, 8), (1, 8, 8), (2, 8, 9), (2, 1, 8, 8)])
def test_keep_of_wrong_shape(shape):
    with pytest.raises(ValueError, match=r'keep must have shape \(2, 8, 8\)'):
        F.apply_frequency_mask(_img(2, 3, 8, 8), torch.ones(shape, dtype=bool))


def test_bad_kind_index_or_param_shape():
    x = _img(2, 3, 8, 8)
    with pytest.raises(ValueError, match=r'kind_index and param must have'):
        F.mixed_keep_mask(x, torch.tensor([0]), torch.tensor([0.1, 0.1]))
    with pytest.raises(ValueError, match=r'kind_index and param must have'):
        F.filter_images(x, torch.tensor([0, 1]), torch.tensor(0.1))
    for bad in (4, -1):
        with pytest.raises(ValueError, match=r'kind_index must index'):
            F.mixed_keep_mask(x, torch.tensor([0, bad]),
                              torch.tensor([0.1, 4.0]))


def test_conjugate_partner_pairs_each_fft_bin_with_its_conjugate():
    x = torch.rand(2, 3, 6, 7, dtype=torch.float64)
    spec = torch.fft.fft2(x)
    torch.testing.assert_close(F.conjugate_partner(spec), spec.conj())
    idx = torch.arange(6 * 7).view(6, 7)
    partner = F.conjugate_partner(idx)
    for u in range(6):
        for v in range(7):
            assert partner[u, v] == idx[(-u) % 6, (-v) % 7]
