"""Tests of FrequencyFilterPreprocessor on batches from the real pipeline."""
import copy
import os.path as osp
import random

import numpy as np
import pytest
import torch
from mmcv.transforms import Compose
from mmengine.dataset import default_collate
from mmpretrain.registry import MODELS, TRANSFORMS

from folk.frequency import filter_images, kind_to_index
from folk.models.data_preprocessor import FrequencyFilterPreprocessor

MEAN = [123.675, 116.28, 103.53]
STD = [58.395, 57.12, 57.375]
CROP = 64
BATCH = 4
META_KEYS = ['img_path', 'freq_kind', 'freq_param']


def seed_all(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def build_preprocessor(**kwargs) -> FrequencyFilterPreprocessor:
    cfg = dict(
        type='FrequencyFilterPreprocessor', mean=MEAN, std=STD, to_rgb=True)
    cfg.update(kwargs)
    return MODELS.build(cfg)


@pytest.fixture(scope='module')
def image_paths(imagenette_root):
    with open(osp.join(imagenette_root, 'train.txt')) as f:
        rel = [line.split()[0] for line in f if line.strip()]
    step = len(rel) // BATCH
    return [osp.join(imagenette_root, rel[i * step]) for i in range(BATCH)]


def make_pipeline(apply: bool = False,
                  num_views: int = 2,
                  filters=None,
                  meta_keys=META_KEYS) -> Compose:
    filt = dict(type='RandomFrequencyFilter', apply=apply)
    if filters is not None:
        filt['filters'] = filters
    return Compose([
        TRANSFORMS.build(cfg) for cfg in [
            dict(type='LoadImageFromFile'),
            dict(type='FOLKViews', crop_size=CROP, num_views=num_views),
            filt,
            dict(
                type='PackInputs',
                algorithm_keys=['freq_keep'],
                meta_keys=meta_keys),
        ]
    ])


def packed_samples(paths, seed=0, **kwargs):
    pipeline = make_pipeline(**kwargs)
    seed_all(seed)
    return [pipeline(dict(img_path=p)) for p in paths]


def without_keep(samples):
    """The same packed samples, minus the CPU keep masks."""
    out = []
    for s in samples:
        ds = s['data_samples'].clone()
        del ds.freq_keep
        assert 'freq_keep' not in ds
        out.append(
            dict(inputs=[x.clone() for x in s['inputs']], data_samples=ds))
    return out


def normalise(x01: torch.Tensor) -> torch.Tensor:
    mean = torch.tensor(MEAN).view(1, 3, 1, 1)
    std = torch.tensor(STD).view(1, 3, 1, 1)
    return (x01 * 255. - mean) / std


@pytest.fixture(scope='module')
def samples(image_paths):
    """Packed samples (pipeline without ``apply``), a batch of BATCH."""
    return packed_samples(image_paths, seed=0)


def test_builds_from_registry():
    pre = build_preprocessor()
    assert isinstance(pre, FrequencyFilterPreprocessor)
    assert pre._channel_conversion
    torch.testing.assert_close(pre.mean.flatten(), torch.tensor(MEAN))


def test_training_output_layout(samples):
    pre = build_preprocessor()
    out = pre(default_collate(copy.deepcopy(samples)), training=True)
    assert set(out) == {'inputs', 'data_samples'}
    inputs = out['inputs']
    assert set(inputs) == {'views', 'filtered', 'keep'}
    for key in ('views', 'filtered', 'keep'):
        assert isinstance(inputs[key], list) and len(inputs[key]) == 2
    for v in range(2):
        assert inputs['views'][v].shape == (BATCH, 3, CROP, CROP)
        assert inputs['views'][v].dtype == torch.float32
        assert inputs['filtered'][v].shape == (BATCH, 3, CROP, CROP)
        assert inputs['filtered'][v].dtype == torch.float32
        assert inputs['keep'][v].shape == (BATCH, CROP, CROP)
        assert inputs['keep'][v].dtype == torch.bool
        assert not torch.equal(inputs['views'][v], inputs['filtered'][v])
    assert len(out['data_samples']) == BATCH
    assert [s.img_path for s in out['data_samples']
            ] == [s['data_samples'].img_path for s in samples]


def test_filtered_equals_folk_frequency_on_rgb_views(samples):
    pre = build_preprocessor()
    batch = default_collate(copy.deepcopy(samples))
    out = pre(batch, training=True)['inputs']
    metas = [s['data_samples'] for s in samples]
    for v in range(2):
        bgr = torch.stack([s['inputs'][v] for s in samples])  # uint8
        rgb01 = bgr[:, [2, 1, 0]].float() / 255.
        kinds = kind_to_index([m.freq_kind[v] for m in metas])
        params = torch.tensor([m.freq_param[v] for m in metas])
        filtered, keep = filter_images(rgb01, kinds, params)
        assert torch.equal(out['keep'][v], keep)
        torch.testing.assert_close(
            out['filtered'][v], normalise(filtered), atol=1e-4, rtol=0)
        torch.testing.assert_close(
            out['views'][v], normalise(rgb01), atol=1e-4, rtol=0)
        # kept fraction matches the chosen Com / RCom ratios
        frac = keep.flatten(1).float().mean(1)
        for b, m in enumerate(metas):
            r = m.freq_param[v]
            expected = r if m.freq_kind[v] == 'com' else 1 - r
            # ceil(r * N) plus at most a tied conjugate pair
            assert abs(float(frac[b]) - expected) < 3.5 / CROP**2


def test_cpu_path_and_batched_path_agree(image_paths):
    """Same random choices: pipeline ``apply=True`` (keep masks packed as an
    algorithm key) vs. the batched path computing them itself."""
    pre = build_preprocessor()
    cpu = packed_samples(image_paths, seed=5, apply=True)
    assert cpu[0]['data_samples'].freq_keep.shape == (2, CROP, CROP)
    # 1) the very same packed samples without their keep masks
    batched = without_keep(cpu)
    # 2) an independent run of the pipeline without apply, same seeds
    rerun = packed_samples(image_paths, seed=5, apply=False)
    for a, b in zip(cpu, rerun):
        assert a['data_samples'].freq_kind == b['data_samples'].freq_kind
        assert a['data_samples'].freq_param == b['data_samples'].freq_param
        assert all(torch.equal(x, y) for x, y in zip(a['inputs'], b['inputs']))
    out_cpu = pre(default_collate(cpu), training=True)['inputs']
    for other in (batched, rerun):
        out = pre(default_collate(other), training=True)['inputs']
        for v in range(2):
            assert torch.equal(out_cpu['keep'][v], out['keep'][v])
            torch.testing.assert_close(
                out_cpu['filtered'][v], out['filtered'][v], atol=1e-5, rtol=0)
            torch.testing.assert_close(
                out_cpu['views'][v], out['views'][v], atol=0, rtol=0)


def test_precomputed_keep_is_used(samples):
    """With ``freq_keep`` packed, the preprocessor applies those masks."""
    pre = build_preprocessor()
    forced = copy.deepcopy(samples)
    lowpass = np.zeros((2, CROP, CROP), dtype=bool)
    lowpass[:, 0, 0] = True  # keep DC only
    for s in forced:
        s['data_samples'].set_field(lowpass.copy(), 'freq_keep')
    out = pre(default_collate(forced), training=True)['inputs']
    for v in range(2):
        assert bool(out['keep'][v][:, 0, 0].all())
        assert int(out['keep'][v].sum()) == BATCH
        # DC only: every pixel of a channel equals the channel mean
        f = out['filtered'][v]
        torch.testing.assert_close(
            f,
            f.mean(dim=(2, 3), keepdim=True).expand_as(f),
            atol=1e-4,
            rtol=0)


def test_mfm_filters_and_single_view(image_paths):
    pre = build_preprocessor()
    filters = [
        dict(kind='lowpass', radius=8, prob=0.5),
        dict(kind='highpass', radius=8, prob=0.5)
    ]
    samples = packed_samples(image_paths, seed=1, num_views=1, filters=filters)
    out = pre(default_collate(samples), training=True)['inputs']
    assert all(len(out[k]) == 1 for k in ('views', 'filtered', 'keep'))
    dist = torch.fft.fftfreq(CROP, 1 / CROP)
    inside = (dist[:, None]**2 + dist[None, :]**2).sqrt() < 8
    for b, s in enumerate(samples):
        kind = s['data_samples'].freq_kind[0]
        expected = inside if kind == 'lowpass' else ~inside
        assert torch.equal(out['keep'][0][b], expected)


def test_eval_returns_plain_normalisation(samples):
    pre = build_preprocessor()
    out = pre(default_collate(copy.deepcopy(samples)), training=False)
    inputs = out['inputs']
    assert isinstance(inputs, list) and len(inputs) == 2
    mean = torch.tensor(MEAN).view(1, 3, 1, 1)
    std = torch.tensor(STD).view(1, 3, 1, 1)
    for v in range(2):
        bgr = torch.stack([s['inputs'][v] for s in samples])
        expected = (bgr[:, [2, 1, 0]].float() - mean) / std
        torch.testing.assert_close(inputs[v], expected, atol=1e-5, rtol=0)
    assert len(out['data_samples']) == BATCH
    # training views are the same normalised images
    train = pre(default_collate(copy.deepcopy(samples)), training=True)
    for v in range(2):
        torch.testing.assert_close(
            train['inputs']['views'][v], inputs[v], atol=1e-4, rtol=0)


def test_missing_freq_kind_raises_helpful_key_error(image_paths):
    pre = build_preprocessor()
    samples = packed_samples(image_paths[:2], seed=0, meta_keys=['img_path'])
    assert 'freq_kind' not in samples[0]['data_samples']
    with pytest.raises(KeyError, match=r'freq_kind.*RandomFrequencyFilter'):
        pre(default_collate(samples), training=True)
    with pytest.raises(KeyError, match=r'PackInputs\(meta_keys='):
        pre(dict(inputs=default_collate(samples)['inputs'], data_samples=None),
            training=True)
    # evaluation does not need the filter choice
    out = pre(default_collate(samples), training=False)
    assert out['inputs'][0].shape == (2, 3, CROP, CROP)


# ---------------------------------------------------------------------------
# Photometric augmentation on the device (FOLKViews(photometric='device'))
# ---------------------------------------------------------------------------
def photometric_samples(paths, photometric: str, seed: int = 3):
    pipeline = Compose([
        TRANSFORMS.build(cfg) for cfg in [
            dict(type='LoadImageFromFile'),
            dict(type='FOLKViews', crop_size=CROP, photometric=photometric),
            dict(type='RandomFrequencyFilter'),
            dict(
                type='PackInputs',
                meta_keys=META_KEYS + ['photometric_params']),
        ]
    ])
    seed_all(seed)
    return [pipeline(dict(img_path=p)) for p in paths]


def test_device_photometric_equals_cpu_photometric(image_paths):
    """Same seed: augmenting in the preprocessor gives the CPU path's views
    (to the level), hence the same filter masks and filtered views."""
    pre = build_preprocessor()
    cpu = photometric_samples(image_paths * 2, 'cpu')
    dev = photometric_samples(image_paths * 2, 'device')
    assert 'photometric_params' not in cpu[0]['data_samples']
    assert len(dev[0]['data_samples'].photometric_params) == 2
    out_cpu = pre(default_collate(cpu), training=True)['inputs']
    out_dev = pre(default_collate(dev), training=True)['inputs']
    level = 1 / min(STD)  # one uint8 level after normalisation
    for v in range(2):
        diff = (out_cpu['views'][v] - out_dev['views'][v]).abs()
        assert float(diff.max()) <= level + 1e-4
        assert float((diff > 1e-4).float().mean()) < 1e-4
        # identical images: identical Com / RCom masks
        assert torch.equal(out_cpu['keep'][v], out_dev['keep'][v])
    # the packed views were not augmented: the preprocessor did it
    raw = pre(default_collate(dev), training=False)['inputs']
    assert not torch.equal(raw[0], out_dev['views'][0])


def test_device_photometric_inconsistencies_raise(image_paths):
    pre = build_preprocessor()
    dev = photometric_samples(image_paths[:2], 'device')
    one_view = copy.deepcopy(dev)
    for s in one_view:
        s['data_samples'].set_metainfo(
            dict(photometric_params=s['data_samples'].photometric_params[:1]))
    with pytest.raises(
            ValueError,
            match=r'photometric_params for 1 views, '
            r'the batch has 2'):
        pre(default_collate(one_view), training=True)
    with_keep = copy.deepcopy(dev)
    for s in with_keep:
        s['data_samples'].set_field(
            np.ones((2, CROP, CROP), bool), 'freq_keep')
    with pytest.raises(
            ValueError, match=r'freq_keep was computed in the '
            r'pipeline'):
        pre(default_collate(with_keep), training=True)
