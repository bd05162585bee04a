"""folk_views_collate: one uint8 tensor and one array per parameter kind,
and the preprocessor gives the same views as from per-sample batches."""
import random

import numpy as np
import pytest
import torch
from mmengine.dataset import pseudo_collate
from mmengine.registry import FUNCTIONS
from mmpretrain.datasets.transforms import PackInputs
from mmpretrain.structures import DataSample

from folk.datasets import FOLKViews, RandomFrequencyFilter
from folk.models.data_preprocessor import FrequencyFilterPreprocessor
from folk.views.collate import collate_params, folk_views_collate
from folk.views.crop import pack_rows
from folk.views.recipe import (CROP_COLUMNS, PHOTOMETRIC_COLUMNS,
                               identity_params)

META = [
    'img_path', 'freq_kind', 'freq_param', 'photometric_params', 'crop_params'
]


def _samples(num: int, crop: str = 'device', seed: int = 0) -> list:
    rng = np.random.default_rng(seed)
    np.random.seed(seed)
    random.seed(seed)
    views = FOLKViews(crop_size=24, photometric='device', crop=crop)
    filt = RandomFrequencyFilter()
    pack = PackInputs(meta_keys=META)
    out = []
    for i in range(num):
        h, w = (30 + 7 * i, 40 - 3 * i)
        img = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
        results = dict(
            img=img, img_shape=(h, w), img_path=f'{i}.jpg', gt_label=i)
        out.append(pack(filt(views(results))))
    return out


def test_registered_and_one_tensor_per_batch():
    assert FUNCTIONS.get('folk_views_collate') is folk_views_collate
    samples = _samples(3)
    batch = folk_views_collate(samples)
    rows, params = batch['inputs'], batch['data_samples']
    assert isinstance(rows, torch.Tensor) and rows.dtype == torch.uint8
    shapes = [tuple(s['inputs'].shape) for s in samples]
    assert [tuple(s) for s in params['shapes']] == shapes
    assert rows.shape == (sum(3 * h for _, h, _ in shapes),
                          max(w for _, _, w in shapes))
    # image 1's rows, channel by channel, padded with zeros
    c, h, w = shapes[1]
    start = 3 * shapes[0][1]
    block = rows[start:start + c * h]
    assert torch.equal(block[:, :w], samples[1]['inputs'].reshape(c * h, w))
    assert not block[:, w:].any()
    assert params['crop'].shape == (2, 3, len(CROP_COLUMNS))
    assert params['photometric'].shape == (2, 3, len(PHOTOMETRIC_COLUMNS))
    assert params['freq_kind'].shape == params['freq_param'].shape == (2, 3)
    assert params['freq_kind'][1, 2] == samples[2]['data_samples'].freq_kind[1]
    # no labels, no per-sample metainfo
    assert set(params) == {
        'shapes', 'crop', 'photometric', 'freq_kind', 'freq_param', 'freq_keep'
    }


def test_preprocessor_gives_the_views_of_per_sample_batches():
    samples = _samples(4)
    pre = FrequencyFilterPreprocessor(
        mean=[123.675, 116.28, 103.53],
        std=[58.395, 57.12, 57.375],
        to_rgb=True)
    a = pre(folk_views_collate(samples), training=True)['inputs']
    b = pre(pseudo_collate(samples), training=True)['inputs']
    for key in ('views', 'filtered', 'keep'):
        assert len(a[key]) == 2
        for x, y in zip(a[key], b[key]):
            assert torch.equal(x, y)
    # the views of a batch are chunks of one stacked tensor
    assert a['views'][1].data_ptr() == (
        a['views'][0].data_ptr() + a['views'][0].nbytes)


def test_cut_views_are_stacked_view_major():
    samples = _samples(3, crop='cpu')
    batch = folk_views_collate(samples)
    x = batch['inputs']
    assert x.shape == (6, 3, 24, 24)
    assert torch.equal(x[4], samples[1]['inputs'][1])  # view 1, sample 1
    assert batch['data_samples']['crop'] is None


def test_errors_name_the_key_and_sample():
    samples = _samples(2)
    del samples[1]['data_samples'].photometric_params
    with pytest.raises(KeyError, match='photometric_params.*sample 1'):
        folk_views_collate(samples)
    samples = _samples(2)
    samples[0]['data_samples'].set_metainfo(
        dict(photometric_params=[identity_params()]))
    with pytest.raises(ValueError, match=r'sample 1 has 2'):
        folk_views_collate(samples)
    bare = [
        dict(
            inputs=torch.zeros(3, 4, 4, dtype=torch.uint8),
            data_samples=DataSample())
    ]
    with pytest.raises(KeyError, match='RandomFrequencyFilter'):
        folk_views_collate(bare)
    with pytest.raises(ValueError, match='empty batch'):
        folk_views_collate([])
    with pytest.raises(ValueError, match='3-d uint8'):
        pack_rows([np.zeros((4, 4), np.uint8)])
    assert collate_params([
        dict(data_samples=s['data_samples']) for s in _samples(1)
    ])['shapes'] is None


def test_through_a_data_loader_with_workers():
    samples = _samples(4)
    loader = torch.utils.data.DataLoader(
        samples, batch_size=4, num_workers=1, collate_fn=folk_views_collate)
    batch = next(iter(loader))
    assert torch.equal(batch['inputs'], folk_views_collate(samples)['inputs'])
