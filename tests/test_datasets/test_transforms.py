"""Tests of FOLK's pipeline transforms: RandomFrequencyFilter and FOLKViews."""
import os.path as osp
import random
from collections import Counter

import cv2
import numpy as np
import pytest
import torch
from mmcv.transforms import Compose
from mmpretrain.registry import TRANSFORMS
from mmpretrain.structures import DataSample

from folk.datasets.transforms import (FOLKViews, RandomFrequencyFilter,
                                      check_filters, draw_photometric_params,
                                      folk_view_transforms)
from folk.frequency import FILTER_KINDS, filter_images

RATIOS = (0.005, 0.01, 0.05)


def seed_all(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


@pytest.fixture(scope='module')
def image_paths(imagenette_root):
    with open(osp.join(imagenette_root, 'train.txt')) as f:
        rel = [line.split()[0] for line in f if line.strip()]
    return [osp.join(imagenette_root, r) for r in rel[::len(rel) // 4][:4]]


@pytest.fixture(scope='module')
def bgr_views(image_paths):
    """Two real 64x64 uint8 BGR views (as after cropping)."""
    views = []
    for p in image_paths[:2]:
        img = cv2.imread(p, cv2.IMREAD_COLOR)
        views.append(np.ascontiguousarray(img[20:84, 30:94]))
    return views


# ---------------------------------------------------------------------------
# RandomFrequencyFilter
# ---------------------------------------------------------------------------
def test_default_filters_are_folk():
    t = RandomFrequencyFilter()
    assert t.filters == [
        dict(kind='com', prob=0.5, ratios=RATIOS),
        dict(kind='rcom', prob=0.5, ratios=RATIOS)
    ]
    assert t.apply is False


def test_records_kind_and_param_per_view(bgr_views):
    seed_all(0)
    t = RandomFrequencyFilter()
    results = t(dict(img=list(bgr_views)))
    assert len(results['freq_kind']) == len(results['freq_param']) == 2
    assert all(k in ('com', 'rcom') for k in results['freq_kind'])
    assert all(p in RATIOS for p in results['freq_param'])
    assert all(isinstance(p, float) for p in results['freq_param'])
    # choices only: nothing filtered, views untouched
    assert 'freq_keep' not in results and 'img_filtered' not in results
    assert all(a is b for a, b in zip(results['img'], bgr_views))
    # a single (non-list) view gets one choice
    single = t(dict(img=bgr_views[0]))
    assert len(single['freq_kind']) == len(single['freq_param']) == 1
    assert isinstance(single['img'], np.ndarray)


def test_radius_filters_record_their_radius(bgr_views):
    t = RandomFrequencyFilter(filters=[
        dict(kind='lowpass', radius=16, prob=0.5),
        dict(kind='highpass', radius=8.0, prob=0.5)
    ])
    seed_all(1)
    for _ in range(20):
        r = t(dict(img=list(bgr_views)))
        for kind, param in zip(r['freq_kind'], r['freq_param']):
            assert param == {'lowpass': 16.0, 'highpass': 8.0}[kind]


def _draw(t: RandomFrequencyFilter, n_calls: int):
    view = np.zeros((4, 4, 3), np.uint8)
    kinds, params = [], []
    for _ in range(n_calls):
        r = t(dict(img=[view, view]))
        kinds += r['freq_kind']
        params += r['freq_param']
    return kinds, params


def test_probabilities_and_ratios_are_respected():
    np.random.seed(0)
    kinds, params = _draw(RandomFrequencyFilter(), 1000)  # 2000 draws
    assert len(kinds) == 2000
    frac_com = kinds.count('com') / 2000
    assert 0.45 <= frac_com <= 0.55
    assert set(kinds) == {'com', 'rcom'}
    # ratios from the configured set, each drawn about a third of the time
    counts = Counter(params)
    assert set(counts) == set(RATIOS)
    assert all(0.28 <= c / 2000 <= 0.39 for c in counts.values())

    np.random.seed(1)
    t = RandomFrequencyFilter(filters=[
        dict(kind='lowpass', radius=16, prob=0.3),
        dict(kind='highpass', radius=16, prob=0.7)
    ])
    kinds, params = _draw(t, 1000)
    assert 0.26 <= kinds.count('lowpass') / 2000 <= 0.34
    assert set(params) == {16.0}

    np.random.seed(2)
    t = RandomFrequencyFilter(filters=[
        dict(kind='com', ratios=[0.02], prob=0.6),
        dict(kind='rcom', ratios=0.1, prob=0.2),
        dict(kind='lowpass', radius=4, prob=0.2)
    ])
    kinds, params = _draw(t, 1000)
    c = Counter(kinds)
    assert 0.55 <= c['com'] / 2000 <= 0.65
    assert 0.16 <= c['rcom'] / 2000 <= 0.24
    assert 0.16 <= c['lowpass'] / 2000 <= 0.24
    expected_param = {'com': 0.02, 'rcom': 0.1, 'lowpass': 4.0}
    assert all(p == expected_param[k] for k, p in zip(kinds, params))


def test_choices_are_reproducible_with_seed():
    np.random.seed(123)
    a = _draw(RandomFrequencyFilter(), 50)
    np.random.seed(123)
    b = _draw(RandomFrequencyFilter(), 50)
    assert a == b


@pytest.mark.parametrize('filters', [
    None,
    [
        dict(kind='lowpass', radius=4, prob=0.5),
        dict(kind='highpass', radius=4, prob=0.5)
    ],
])
def test_apply_writes_keep_and_filtered_views(bgr_views, filters):
    seed_all(3)
    t = RandomFrequencyFilter(filters=filters, apply=True)
    for _ in range(3):
        results = t(dict(img=list(bgr_views), img_path='x.jpg'))
        keep = results['freq_keep']
        assert isinstance(keep, np.ndarray)
        assert keep.dtype == np.bool_ and keep.shape == (2, 64, 64)
        filtered = results['img_filtered']
        assert len(filtered) == 2
        for v, view in enumerate(bgr_views):
            f = filtered[v]
            assert f.shape == (64, 64, 3) and f.dtype == np.float32
            assert f.min() >= 0 and f.max() <= 255
            # the same as folk.frequency on the [0, 1] view (channel order
            # as given; the mask does not depend on it)
            x = torch.from_numpy(view).permute(2, 0, 1)[None].float() / 255.
            kind = results['freq_kind'][v]
            out, ref_keep = filter_images(
                x, torch.tensor([FILTER_KINDS.index(kind)]),
                torch.tensor([results['freq_param'][v]]))
            np.testing.assert_array_equal(keep[v], ref_keep[0].numpy())
            np.testing.assert_allclose(
                f, out[0].permute(1, 2, 0).numpy() * 255., atol=1e-4, rtol=0)
            # filtering changed the view
            assert np.abs(f - view.astype(np.float32)).mean() > 0.5
        # the unfiltered views are kept as they were
        assert all(a is b for a, b in zip(results['img'], bgr_views))


def test_apply_needs_three_channels():
    t = RandomFrequencyFilter(apply=True)
    with pytest.raises(ValueError, match=r'3-channel views.*gray\.jpg'):
        t(dict(img=[np.zeros((8, 8), np.uint8)], img_path='gray.jpg'))


@pytest.mark.parametrize('filters,match', [
    ([
        dict(kind='com', ratios=RATIOS, prob=0.5),
        dict(kind='band', ratios=RATIOS, prob=0.5)
    ], r"filters\[1\]\.kind must be one of .*'band'"),
    ([
        dict(kind='com', ratios=RATIOS, prob=0.5),
        dict(kind='rcom', ratios=RATIOS, prob=0.4)
    ], r'probabilities of filters must sum to 1, got 0\.9'),
    ([dict(kind='com', ratios=(0.01, 1.5), prob=1.0)
      ], r'filters\[0\]\.ratios must be .*in \(0, 1\]'),
    ([dict(kind='com', ratios=(0.0, ), prob=1.0)
      ], r'filters\[0\]\.ratios must be'),
    ([dict(kind='rcom', ratios=(), prob=1.0)
      ], r'filters\[0\]\.ratios must be a non-empty list'),
    ([dict(kind='com', ratio=0.01, prob=1.0)
      ], r"filters\[0\] has unknown key\(s\) \['ratio'\] for kind 'com'"),
    ([
        dict(kind='lowpass', radius=16, prob=0.5),
        dict(kind='highpass', ratios=RATIOS, prob=0.5)
    ], r"filters\[1\] has unknown key\(s\) \['ratios'\]"),
    ([dict(kind='lowpass', radius=0, prob=1.0)
      ], r'filters\[0\]\.radius must be a number > 0'),
    ([dict(kind='highpass', radius=-2.0, prob=1.0)
      ], r'filters\[0\]\.radius must be a number > 0'),
    ([dict(kind='highpass', prob=1.0)], r'filters\[0\]\.radius must be'),
    ([dict(kind='com', ratios=RATIOS, prob=0)
      ], r'filters\[0\]\.prob must be a number > 0'),
    ([dict(kind='com', ratios=RATIOS)], r'filters\[0\]\.prob must be'),
    ([dict(ratios=RATIOS, prob=1.0)], r'filters\[0\] must be a dict with'),
    ([], r'filters must be a non-empty list'),
])
def test_check_filters_errors_name_the_entry(filters, match):
    with pytest.raises(ValueError, match=match):
        check_filters(filters)
    with pytest.raises(ValueError, match=match):
        RandomFrequencyFilter(filters=filters)
    with pytest.raises(ValueError, match=match):
        TRANSFORMS.build(dict(type='RandomFrequencyFilter', filters=filters))


def test_check_filters_normalises_and_copies():
    given = [
        dict(kind='com', ratios=0.01, prob=1),
        dict(kind='lowpass', radius=16, prob=1)
    ]
    out = check_filters(given[:1])
    assert out == [dict(kind='com', prob=1.0, ratios=(0.01, ))]
    assert given[0]['ratios'] == 0.01  # input not modified
    with pytest.raises(ValueError, match=r'sum to 1, got 2'):
        check_filters(given)
    out = check_filters([dict(kind='lowpass', radius=16, prob=1)],
                        name='mfm_filters')
    assert out == [dict(kind='lowpass', prob=1.0, radius=16.0)]
    with pytest.raises(ValueError, match=r'mfm_filters\[0\]\.radius'):
        check_filters([dict(kind='lowpass', radius=0, prob=1)],
                      name='mfm_filters')


def test_repr():
    t = RandomFrequencyFilter(
        filters=[
            dict(kind='lowpass', radius=16, prob=0.5),
            dict(kind='highpass', radius=16, prob=0.5)
        ],
        apply=True)
    text = repr(t)
    assert text.startswith('RandomFrequencyFilter(')
    assert 'filters=' in text and "'lowpass'" in text and "'highpass'" in text
    assert "'radius': 16.0" in text and 'apply=True' in text
    assert "'com'" in repr(RandomFrequencyFilter())
    assert 'apply=False' in repr(RandomFrequencyFilter())


def test_registered():
    t = TRANSFORMS.build(dict(type='RandomFrequencyFilter', apply=True))
    assert isinstance(t, RandomFrequencyFilter) and t.apply


# ---------------------------------------------------------------------------
# FOLKViews
# ---------------------------------------------------------------------------
@pytest.fixture(scope='module')
def loaded(image_paths):
    load = TRANSFORMS.build(dict(type='LoadImageFromFile'))
    return load(dict(img_path=image_paths[0]))


def _fresh(loaded):
    return dict(
        img=loaded['img'].copy(),
        img_path=loaded['img_path'],
        img_shape=loaded['img_shape'],
        ori_shape=loaded['ori_shape'])


def test_folk_views_two_views(loaded):
    t = TRANSFORMS.build(dict(type='FOLKViews', crop_size=96))
    assert isinstance(t, FOLKViews)
    assert t.num_views == 2 and t.crop_scale == (0.25, 1.0)
    for seed in range(6):  # exercises the random photometric branches
        seed_all(seed)
        out = t(_fresh(loaded))
        views = out['img']
        assert isinstance(views, list) and len(views) == 2
        for v in views:
            assert v.shape == (96, 96, 3) and v.dtype == np.uint8
        assert not np.array_equal(views[0], views[1])


def test_folk_views_are_reproducible(loaded):
    t = FOLKViews(crop_size=64)
    seed_all(7)
    a = t(_fresh(loaded))['img']
    seed_all(7)
    b = t(_fresh(loaded))['img']
    assert all(np.array_equal(x, y) for x, y in zip(a, b))


def test_folk_views_one_view_and_no_photometric(loaded):
    t = TRANSFORMS.build(
        dict(type='FOLKViews', crop_size=64, num_views=1, photometric=False))
    assert t.photometric == 'none'
    seed_all(0)
    out = t(_fresh(loaded))
    views = out['img']
    assert isinstance(views, list) and len(views) == 1
    assert views[0].shape == (64, 64, 3) and views[0].dtype == np.uint8
    assert 'photometric_params' not in out
    # MFM recipe: crop + flip only
    names = [type(s).__name__ for s in t.pipelines[0].transforms]
    assert names == ['RandomResizedCrop', 'RandomFlip']
    # crop + resize only: colours stay those of the image (no jitter/gray)
    src = loaded['img'].reshape(-1, 3).astype(np.float64).mean(0)
    assert np.abs(views[0].reshape(-1, 3).mean(0) - src).max() < 60


def test_folk_views_whole_image_crop_is_resize(loaded):
    """crop_scale (1, 1) of a square image = resize (up to flipping)."""
    t = FOLKViews(
        crop_size=64, crop_scale=(1.0, 1.0), photometric=False, num_views=1)
    seed_all(0)
    view = t(_fresh(loaded))['img'][0].astype(np.float64)
    img = loaded['img']
    assert img.shape[0] == img.shape[1]
    ref = cv2.resize(img, (64, 64), interpolation=cv2.INTER_AREA)
    ref = ref.astype(np.float64)
    err = min(np.abs(view - ref).mean(), np.abs(view[:, ::-1] - ref).mean())
    assert err < 8


def test_folk_views_repr():
    text = repr(FOLKViews(crop_size=32, num_views=1, photometric=False))
    assert text == ('FOLKViews(crop_size=32, crop_scale=(0.25, 1.0), '
                    "photometric='none', num_views=1, jitter_backend='cv2', "
                    "blur_sigma=(0.1, 2.0), crop='cpu')")
    assert "photometric='device'" in repr(FOLKViews(photometric='device'))
    assert "photometric='cpu'" in repr(FOLKViews(photometric=True))


def test_folk_views_blur_sigma_range(loaded):
    """blur_sigma sets the radius range of both paths' Gaussian blur."""
    t = FOLKViews(crop_size=64, photometric='device', blur_sigma=(0.2, 0.5))
    seed_all(3)
    sigmas = []
    for _ in range(60):
        params = t(_fresh(loaded))['photometric_params']
        sigmas += [p['blur_sigma'] for p in params if p['blur_sigma'] > 0]
    # view 0 is always blurred: at least 60 draws, all inside the range
    assert len(sigmas) >= 60
    assert 0.2 <= min(sigmas) and max(sigmas) <= 0.5
    assert max(sigmas) - min(sigmas) > 0.2  # spread over the range
    # the reference chain carries the same range
    blur = [
        c for c in folk_view_transforms(0, 64, blur_sigma=(0.2, 0.5))
        if c['type'] == 'GaussianBlur'
    ]
    assert blur[0]['magnitude_range'] == (0.2, 0.5)
    with pytest.raises(ValueError, match='blur_sigma'):
        FOLKViews(blur_sigma=(0.0, 1.0))
    with pytest.raises(ValueError, match='blur_sigma'):
        FOLKViews(blur_sigma=(2.0, 1.0))


def test_folk_views_bad_jitter_backend():
    with pytest.raises(ValueError, match=r"jitter_backend must be one of"):
        FOLKViews(jitter_backend='turbojpeg')
    with pytest.raises(
            ValueError,
            match=r"jitter_backend='pillow' needs "
            r"photometric='cpu'"):
        FOLKViews(jitter_backend='pillow', photometric='device')


@pytest.mark.parametrize('photometric', ['gpu', 'CPU', None, 1])
def test_folk_views_bad_photometric(photometric):
    with pytest.raises(
            ValueError,
            match=r"FOLKViews: photometric must be "
            r"one of \('device', 'cpu', 'none'\)"):
        FOLKViews(photometric=photometric)


@pytest.mark.parametrize('op, factors, max_mean, max_abs', [
    ('brightness', (0.6, 1.4), 0.01, 1),
    ('contrast', (0.6, 1.4), 0.25, 1),
    ('saturation', (0.8, 1.2), 0.6, 1),
    ('hue', (-0.1, 0.1), 0.5, 16),
])
def test_color_jitter_cv2_matches_pillow(image_paths, op, factors, max_mean,
                                         max_abs):
    """The cv2 backend FOLKViews uses gives the pillow backend's image
    within rounding, on real images, for each of ColorJitter's four
    operations: at most one level per pixel, except the hue shift, where
    single pixels of low saturation can round to another hue (mean under
    half a level)."""
    rng = np.random.default_rng(0)
    for path in image_paths:
        img = cv2.imread(path)
        for factor in (factors[0], factors[1], rng.uniform(*factors)):
            out = {}
            for backend in ('cv2', 'pillow'):
                # only ``op``, with a fixed factor (0 disables the others)
                params = dict(brightness=0, contrast=0, saturation=0, hue=0)
                params[op] = (factor, factor)
                jitter = TRANSFORMS.build(
                    dict(type='ColorJitter', backend=backend, **params))
                out[backend] = jitter(dict(img=img.copy()))['img'].astype(int)
            diff = np.abs(out['cv2'] - out['pillow'])
            assert diff.mean() <= max_mean, (path, factor, diff.mean())
            assert diff.max() <= max_abs, (path, factor, diff.max())


@pytest.mark.parametrize('num_views', [0, 3, -1])
def test_folk_views_bad_num_views(num_views):
    with pytest.raises(ValueError, match=r'num_views must be 1 or 2'):
        FOLKViews(num_views=num_views)
    with pytest.raises(ValueError, match=r'num_views must be 1 or 2'):
        TRANSFORMS.build(dict(type='FOLKViews', num_views=num_views))


@pytest.mark.parametrize('crop_scale', [(0.0, 1.0), (0.6, 0.3), (0.2, 1.5),
                                        (-0.1, 0.5)])
def test_folk_views_bad_crop_scale(crop_scale):
    with pytest.raises(ValueError, match=r'crop_scale must satisfy'):
        FOLKViews(crop_scale=crop_scale)


# ---------------------------------------------------------------------------
# Full pipeline
# ---------------------------------------------------------------------------
def test_full_pipeline_on_real_file(image_paths):
    pipeline = Compose([
        TRANSFORMS.build(cfg) for cfg in [
            dict(type='LoadImageFromFile'),
            dict(type='FOLKViews', crop_size=64),
            dict(type='RandomFrequencyFilter'),
            dict(
                type='PackInputs',
                meta_keys=['img_path', 'freq_kind', 'freq_param']),
        ]
    ])
    seed_all(0)
    for path in image_paths:
        packed = pipeline(dict(img_path=path))
        inputs = packed['inputs']
        assert isinstance(inputs, list) and len(inputs) == 2
        for x in inputs:
            assert isinstance(x, torch.Tensor)
            assert x.shape == (3, 64, 64) and x.dtype == torch.uint8
        ds = packed['data_samples']
        assert isinstance(ds, DataSample)
        assert ds.img_path == path
        assert len(ds.freq_kind) == len(ds.freq_param) == 2
        assert set(ds.freq_kind) <= {'com', 'rcom'}
        assert set(ds.freq_param) <= set(RATIOS)
        assert 'freq_keep' not in ds


def test_full_pipeline_with_apply_packs_keep(image_paths):
    pipeline = Compose([
        TRANSFORMS.build(cfg) for cfg in [
            dict(type='LoadImageFromFile'),
            dict(type='FOLKViews', crop_size=48, photometric=False),
            dict(type='RandomFrequencyFilter', apply=True),
            dict(
                type='PackInputs',
                algorithm_keys=['freq_keep'],
                meta_keys=['img_path', 'freq_kind', 'freq_param']),
        ]
    ])
    seed_all(0)
    packed = pipeline(dict(img_path=image_paths[1]))
    keep = packed['data_samples'].freq_keep
    assert keep.shape == (2, 48, 48) and keep.dtype == np.bool_
    # the packed keep masks belong to the packed views
    for v, x in enumerate(packed['inputs']):
        x01 = x[None].float() / 255.
        kind = packed['data_samples'].freq_kind[v]
        _, ref = filter_images(
            x01, torch.tensor([FILTER_KINDS.index(kind)]),
            torch.tensor([packed['data_samples'].freq_param[v]]))
        np.testing.assert_array_equal(keep[v], ref[0].numpy())


def test_reference_chain_follows_dinos_asymmetric_recipe():
    """The MMPretrain chain the parameters are drawn for."""

    def by_name(i):
        return {t['type']: t for t in folk_view_transforms(i, 32)}

    v0, v1 = by_name(0), by_name(1)
    assert v0['GaussianBlur']['prob'] == 1.0
    assert v1['GaussianBlur']['prob'] == 0.1
    assert 'Solarize' not in v0 and v1['Solarize']['prob'] == 0.2
    assert v0['RandomApply']['prob'] == v1['RandomApply']['prob'] == 0.8
    assert v0['RandomGrayscale']['prob'] == 0.2
    jitter = v0['RandomApply']['transforms'][0]
    assert (jitter['brightness'], jitter['contrast'], jitter['saturation'],
            jitter['hue']) == (0.4, 0.4, 0.2, 0.1)
    assert v0['GaussianBlur']['magnitude_range'] == (0.1, 2.0)
    names = [t['type'] for t in folk_view_transforms(0, 32, photometric=False)]
    assert names == ['RandomResizedCrop', 'RandomFlip']


# ---------------------------------------------------------------------------
# FOLKViews: CPU path = MMPretrain's chain, device path = CPU path
# ---------------------------------------------------------------------------
def _chain(crop: int, backend: str = 'cv2'):
    """MMPretrain's MultiView of the reference transform chain."""
    return TRANSFORMS.build(
        dict(
            type='MultiView',
            num_views=[1, 1],
            transforms=[
                folk_view_transforms(i, crop, jitter_backend=backend)
                for i in range(2)
            ]))


@pytest.mark.parametrize('backend', ['cv2', 'pillow'])
def test_cpu_path_gives_the_images_of_mmpretrains_chain(image_paths, backend):
    """Same seed: the same random calls, so the very same images."""
    chain = _chain(48, backend)
    views = FOLKViews(crop_size=48, photometric='cpu', jitter_backend=backend)
    load = TRANSFORMS.build(dict(type='LoadImageFromFile'))
    for seed, path in enumerate(image_paths * 3):
        img = load(dict(img_path=path))
        seed_all(seed)
        ref = chain(_fresh(img))['img']
        seed_all(seed)
        out = views(_fresh(img))['img']
        assert all(np.array_equal(a, b) for a, b in zip(ref, out)), seed


def test_device_path_gives_the_images_of_the_cpu_path(image_paths):
    """Same seed: the device path returns the crops and the parameters,
    and applying them batched gives the CPU path's images."""
    from folk.views.photometric import apply_photometric
    cpu = FOLKViews(crop_size=48, photometric='cpu')
    dev = FOLKViews(crop_size=48, photometric='device')
    load = TRANSFORMS.build(dict(type='LoadImageFromFile'))
    crops, params, expected = [], [], []
    for seed, path in enumerate(image_paths * 3):
        img = load(dict(img_path=path))
        seed_all(seed)
        expected += cpu(_fresh(img))['img']
        seed_all(seed)
        out = dev(_fresh(img))
        assert len(out['photometric_params']) == 2
        crops += out['img']
        params += out['photometric_params']
    assert any(p['jitter'] for p in params)
    assert any(p['blur_sigma'] > 0 for p in params)
    x = torch.from_numpy(np.stack(crops)).permute(0, 3, 1, 2).contiguous()
    got = apply_photometric(x, params).permute(0, 2, 3, 1).numpy()
    d = np.abs(got.astype(int) - np.stack(expected).astype(int))
    assert d.max() <= 1 and np.count_nonzero(d) <= d.size * 1e-4
    # the crops themselves are not augmented yet
    assert not np.array_equal(np.stack(crops), np.stack(expected))


def _binomial_ok(flags, p: float) -> bool:
    """Frequency within 4 standard deviations of p."""
    n = len(flags)
    sd = max((p * (1 - p) / n)**0.5, 1e-12)
    return abs(np.mean(flags) - p) <= 4 * sd


@pytest.mark.parametrize('view', [0, 1])
def test_drawn_parameters_follow_the_recipe(view):
    from scipy import stats
    seed_all(view)
    draws = [draw_photometric_params(view) for _ in range(4000)]
    jitter = [p for p in draws if p['jitter']]
    assert _binomial_ok([p['jitter'] for p in draws], 0.8)
    assert _binomial_ok([p['grayscale'] for p in draws], 0.2)
    assert _binomial_ok([p['blur_sigma'] > 0 for p in draws], (1.0, 0.1)[view])
    assert _binomial_ok([p['solarize'] for p in draws], (0.0, 0.2)[view])
    for name, (low, high) in [('brightness', (0.6, 1.4)),
                              ('contrast', (0.6, 1.4)),
                              ('saturation', (0.8, 1.2)),
                              ('hue', (-0.1, 0.1))]:
        values = np.array([p[name] for p in jitter])
        assert low <= values.min() and values.max() <= high
        # uniform on the range (Kolmogorov-Smirnov, fixed seed)
        assert stats.kstest(
            values, 'uniform', args=(low, high - low)).pvalue > 1e-3
    sigma = np.array([p['blur_sigma'] for p in draws if p['blur_sigma']])
    assert 0.1 <= sigma.min() and sigma.max() <= 2.0
    assert stats.kstest(sigma, 'uniform', args=(0.1, 1.9)).pvalue > 1e-3
    # the 24 orders of the four operations are equally likely
    counts = Counter(p['order'] for p in jitter)
    assert len(counts) == 24
    assert stats.chisquare(list(counts.values())).pvalue > 1e-3
    # no jitter: identity factors
    assert all(p['order'] == (0, 1, 2, 3) and p['brightness'] == 1.0
               for p in draws if not p['jitter'])


def test_drawn_parameters_are_those_of_mmpretrains_transforms():
    """The draws are the random parameters MMPretrain's transforms take
    from the same generator state (their own sampling methods)."""
    chain = [TRANSFORMS.build(t) for t in folk_view_transforms(1, 32)[2:]]
    apply, gray, blur, solar = chain
    jitter = apply.transforms.transforms[0]
    for seed in range(200):
        seed_all(seed)
        mine = draw_photometric_params(1)
        seed_all(seed)
        ref = dict(jitter=bool(apply.random_apply()))
        if ref['jitter']:
            order, b, c, s, h = jitter._rand_params()
            ref.update(
                order=tuple(int(o) for o in order),
                brightness=b,
                contrast=c,
                saturation=s,
                hue=h)
        ref['grayscale'] = gray._random_prob() < gray.prob
        ref['blur_sigma'] = (0.0 if blur.random_disable() else
                             blur.random_magnitude())
        ref['solarize'] = not solar.random_disable()
        assert {k: mine[k] for k in ref} == ref, seed


def test_device_params_are_packed(image_paths):
    pipeline = Compose([
        TRANSFORMS.build(cfg) for cfg in [
            dict(type='LoadImageFromFile'),
            dict(type='FOLKViews', crop_size=32, photometric='device'),
            dict(type='RandomFrequencyFilter'),
            dict(
                type='PackInputs',
                meta_keys=['freq_kind', 'freq_param', 'photometric_params']),
        ]
    ])
    seed_all(0)
    packed = pipeline(dict(img_path=image_paths[0]))
    params = packed['data_samples'].photometric_params
    assert len(params) == 2
    from folk.views.recipe import PARAM_KEYS
    assert all(tuple(p) == PARAM_KEYS for p in params)
    assert params[0]['solarize'] is False  # view 0 is never solarised
    assert all(x.dtype == torch.uint8 for x in packed['inputs'])


def test_apply_filter_refuses_views_augmented_later(bgr_views):
    t = RandomFrequencyFilter(apply=True)
    with pytest.raises(
            ValueError, match=r"photometric='cpu' with "
            r'apply=True'):
        t(dict(img=list(bgr_views), photometric_params=[{}, {}]))


@pytest.mark.parametrize('name', [
    'folk/folk_vit-base-p16_8xb128-amp-coslr-300e_in1k.py',
    'folk/folk_vit-small-p16_8xb128-amp-coslr-300e_in1k.py',
    'folk/folk_resnet50_8xb128-amp-coslr-300e_in1k.py', 'folk_vit-b.py',
    'demo/folk_vit-tiny-p8_1xb32-200i_imagenette128.py'
])
def test_folk_configs_augment_on_the_device(repo_root, name):
    """FOLK's pre-training configs draw the photometric parameters in the
    pipeline and pack them for the data preprocessor."""
    from mmengine.config import Config
    cfg = Config.fromfile(osp.join(repo_root, 'configs', name))
    steps = {t['type']: t for t in cfg.train_dataloader.dataset.pipeline}
    assert steps['FOLKViews']['photometric'] == 'device'
    assert 'photometric_params' in steps['PackInputs']['meta_keys']
    assert steps['RandomFrequencyFilter'].get('apply', False) is False
    assert cfg.data_preprocessor.type == 'FrequencyFilterPreprocessor'
