"""The batched photometric operations equal MMCV / Pillow's CPU functions.

Every operation runs on real images (Imagenette, 128 px) with per-image
parameters and is compared with the CPU function MMPretrain's transform
calls for the same parameters, pixel by pixel.
"""
import os.path as osp

import cv2
import mmcv
import numpy as np
import pytest
import torch
from mmcv.transforms import RandomGrayscale
from mmpretrain.registry import TRANSFORMS
from PIL import Image, ImageFilter

from folk.views import photometric as P
from folk.views.recipe import PHOTOMETRIC_COLUMNS, photometric_array

NUM = 12


@pytest.fixture(scope='module')
def images(imagenette_root):
    """NUM real 128x128 BGR images from all classes."""
    with open(osp.join(imagenette_root, 'train.txt')) as f:
        rel = [line.split()[0] for line in f if line.strip()]
    step = len(rel) // NUM
    return [cv2.imread(osp.join(imagenette_root, r))
            for r in rel[::step]][:NUM]


def batch(images) -> torch.Tensor:
    return torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).contiguous()


def diff(out: torch.Tensor, ref) -> np.ndarray:
    """Absolute difference in levels, (N, H, W, 3)."""
    assert out.dtype == torch.uint8
    return np.abs(
        out.permute(0, 2, 3, 1).numpy().astype(int) -
        np.stack(ref).astype(int))


def factors(low: float, high: float, n: int, seed: int) -> np.ndarray:
    """Both ends of the range, then uniform draws."""
    rng = np.random.default_rng(seed)
    return np.concatenate([[low, high], rng.uniform(low, high, n - 2)])


@pytest.mark.parametrize(
    'name, low, high, ref',
    [
        ('brightness', 0.6, 1.4,
         lambda img, f: mmcv.adjust_brightness(img, f, backend='cv2')),
        ('contrast', 0.6, 1.4,
         lambda img, f: mmcv.adjust_contrast(img, f, backend='cv2')),
        ('saturation', 0.8, 1.2,
         lambda img, f: mmcv.adjust_color(img, alpha=f, backend='cv2')),
        ('hue', -0.1, 0.1,
         lambda img, f: mmcv.adjust_hue(img, f, backend='cv2')),
        # wider than FOLK's ranges: dark / saturated / clipped results and
        # large hue turns
        ('brightness', 0.0, 3.0,
         lambda img, f: mmcv.adjust_brightness(img, f, backend='cv2')),
        ('contrast', 0.0, 3.0,
         lambda img, f: mmcv.adjust_contrast(img, f, backend='cv2')),
        ('saturation', 0.0, 3.0,
         lambda img, f: mmcv.adjust_color(img, alpha=f, backend='cv2')),
        ('hue', -0.5, 0.5,
         lambda img, f: mmcv.adjust_hue(img, f, backend='cv2')),
    ])
def test_color_jitter_ops_equal_mmcv_cv2(images, name, low, high, ref):
    values = factors(low, high, len(images), seed=len(name))
    func = getattr(P, 'adjust_' + name)
    out = func(batch(images), values)
    d = diff(out, [ref(img, float(v)) for img, v in zip(images, values)])
    # OpenCV's arithmetic is reproduced: equal on these images (the hue's
    # float32 HSV -> BGR may differ by one level on rare pixels)
    assert d.max() <= (1 if name == 'hue' else 0), d.max()
    assert np.count_nonzero(d) <= (d.size * 1e-4 if name == 'hue' else 0)
    if low < 1 < high or low < 0 < high:  # the operation did something
        assert (out.int() - batch(images).int()).abs().float().mean() > 1


def test_hsv_and_gray_equal_opencv_on_a_colour_grid():
    """A grid of 8-bit colours (every third level and 255 per channel,
    658,503 colours) through OpenCV's HSV_FULL pair and gray conversion."""
    v = np.append(np.arange(0, 256, 3), 255).astype(np.uint8)
    b, g, r = np.meshgrid(v, v, v, indexing='ij')
    img = np.stack([b, g, r], -1).reshape(len(v)**2, len(v), 3)
    x = torch.from_numpy(img).permute(2, 0, 1)[None]
    hsv = P.bgr_to_hsv_full(x)
    ref = cv2.cvtColor(img, cv2.COLOR_BGR2HSV_FULL)
    assert torch.equal(hsv[0].permute(1, 2, 0), torch.from_numpy(ref).int())
    # the inverse on every (h, s, v) triple
    back = P.hsv_full_to_bgr(x.int())[0].permute(1, 2, 0).numpy()
    ref = cv2.cvtColor(img, cv2.COLOR_HSV2BGR_FULL)
    d = np.abs(back.astype(int) - ref.astype(int))
    assert d.max() <= 1 and np.count_nonzero(d) <= d.size * 1e-4
    gray = P.rgb_to_gray(x)[0, 0].numpy()
    assert np.array_equal(gray, cv2.cvtColor(img, cv2.COLOR_BGR2GRAY))


def test_grayscale_equals_mmcv_random_grayscale(images):
    gray = RandomGrayscale(
        prob=1.0, keep_channels=True, channel_weights=P.GRAYSCALE_WEIGHTS)
    out = P.grayscale(batch(images))
    d = diff(out, [gray(dict(img=img.copy()))['img'] for img in images])
    assert d.max() == 0
    assert torch.equal(out[:, 0], out[:, 1]) and torch.equal(
        out[:, 0], out[:, 2])


@pytest.mark.parametrize('low, high', [(0.1, 2.0), (2.0, 6.0)])
def test_gaussian_blur_equals_pillow(images, low, high):
    """Pillow's three fixed-point box blurs, reproduced exactly, at the
    recipe's radii (0.1-2) and at larger ones (box radius up to 5)."""
    sigma = factors(low, high, len(images), seed=3)
    out = P.gaussian_blur(batch(images), sigma)
    ref = [
        np.array(
            Image.fromarray(img).filter(
                ImageFilter.GaussianBlur(radius=float(s))))
        for img, s in zip(images, sigma)
    ]
    assert diff(out, ref).max() == 0
    # and it is MMPretrain's GaussianBlur transform for a fixed radius
    blur = TRANSFORMS.build(
        dict(type='GaussianBlur', radius=float(sigma[1]), prob=1.0))
    ref = blur(dict(img=images[1].copy()))['img']
    assert diff(out[1:2], [ref]).max() == 0


def test_box_blur_weights_sum_to_one_and_grow_with_sigma():
    radii = []
    for sigma in (0.1, 0.5, 1.0, 2.0, 5.0):
        r, ww, fw = P.pil_box_blur_weights(sigma)
        assert (2 * r + 1) * ww + 2 * fw in ((1 << 24), (1 << 24) - 1)
        assert 0 <= fw <= ww
        radii.append(r + fw / ww)
    assert radii == sorted(radii) and radii[0] < 0.01
    taps = P.box_blur_taps([0.1, 2.0])
    assert taps.shape == (2, 5)  # largest integer radius 1, plus one
    assert taps[0, 0] == taps[0, 4] == 0 and taps[0, 2] > 0


def test_solarize_equals_mmcv(images):
    out = P.solarize(batch(images))
    assert diff(out, [mmcv.solarize(img, thr=128) for img in images]).max() \
        == 0


def random_params(n: int, seed: int) -> list:
    rng = np.random.default_rng(seed)
    params = []
    for i in range(n):
        p = P.identity_params()
        p['jitter'] = bool(i % 5 != 4)
        p['order'] = tuple(int(o) for o in rng.permutation(4))
        p['brightness'], p['contrast'] = rng.uniform(0.6, 1.4, 2)
        p['saturation'] = rng.uniform(0.8, 1.2)
        p['hue'] = rng.uniform(-0.1, 0.1)
        p['grayscale'] = bool(i % 4 == 1)
        p['blur_sigma'] = float(rng.uniform(0.1, 2.0)) if i % 3 else 0.0
        p['solarize'] = bool(i % 3 == 2)
        params.append(p)
    return params


def test_whole_recipe_equals_cpu_path(images):
    """Random order of the jitter operations per image, grayscale, blur and
    solarisation together: the batch equals the CPU path image by image."""
    params = random_params(len(images), seed=0)
    assert len({p['order'] for p in params}) > 4
    out = P.apply_photometric(batch(images), params)
    ref = [
        P.apply_photometric_cpu(img.copy(), p)
        for img, p in zip(images, params)
    ]
    d = diff(out, ref)
    assert d.max() <= 1 and np.count_nonzero(d) <= d.size * 1e-4
    # the order matters: another order gives other images
    swapped = [dict(p, order=p['order'][::-1]) for p in params]
    other = P.apply_photometric(batch(images), swapped)
    assert not torch.equal(other, out)


def test_identity_params_change_nothing(images):
    x = batch(images)
    out = P.apply_photometric(x, [P.identity_params()] * len(images))
    assert torch.equal(out, x) and out.data_ptr() != x.data_ptr()


def test_apply_photometric_rejects_bad_input(images):
    x = batch(images[:2])
    good = [P.identity_params()] * 2
    with pytest.raises(ValueError, match=r'\(N, 3, H, W\) uint8'):
        P.apply_photometric(x.float(), good)
    with pytest.raises(ValueError, match=r'1 parameter dicts for 2 images'):
        P.apply_photometric(x, good[:1])
    with pytest.raises(
            ValueError, match=r"params\[1\]: missing keys "
            r"\['blur_sigma'\]"):
        bad = dict(good[1])
        del bad['blur_sigma']
        P.apply_photometric(x, [good[0], bad])
    with pytest.raises(
            ValueError, match=r'params\[0\]\.order must be a '
            r'permutation'):
        P.apply_photometric(x, [dict(good[0], order=(0, 0, 1, 2)), good[1]])
    with pytest.raises(ValueError, match=r'params\[0\]\.hue must be in'):
        P.apply_photometric(x, [dict(good[0], hue=0.7), good[1]])


def test_parameter_array_round_trip_and_checks():
    params = random_params(6, seed=2)
    arr = photometric_array(params)
    assert arr.shape == (6, len(PHOTOMETRIC_COLUMNS))
    P.check_photometric_array(arr)
    bad = arr.copy()
    bad[3, 1:5] = (0, 0, 1, 2)
    with pytest.raises(ValueError, match=r'params\[3\]\.order'):
        P.check_photometric_array(bad, 'params')
    bad = arr.copy()
    bad[1, PHOTOMETRIC_COLUMNS.index('blur_sigma')] = -1
    with pytest.raises(ValueError, match=r'params\[1\]\.blur_sigma'):
        P.check_photometric_array(bad, 'params')


def test_array_and_dicts_give_the_same_images(images):
    params = random_params(len(images), seed=4)
    a = P.apply_photometric(batch(images), params)
    b = P.apply_photometric(batch(images), photometric_array(params))
    assert torch.equal(a, b)


@pytest.mark.parametrize('dtype', [torch.bfloat16, torch.float16])
def test_autocast_changes_nothing(images, dtype):
    """The blur's convolutions and the blends are exact only in float32 /
    float64: CPU autocast must not reach them."""
    params = random_params(len(images), seed=5)
    ref = P.apply_photometric(batch(images), params)
    with torch.autocast('cpu', dtype=dtype):
        out = P.apply_photometric(batch(images), params)
        blurred = P.gaussian_blur(batch(images), [1.5] * len(images))
    assert torch.equal(out, ref)
    assert torch.equal(blurred,
                       P.gaussian_blur(batch(images), [1.5] * len(images)))
