"""The configured FOLK preprocessor gives the same views under autocast.

MMEngine calls the data preprocessor inside the optim wrapper's context,
i.e. under AMP autocast. The crops, photometric augmentation (its Gaussian
blur is a ``conv2d``) and the filters must not follow it: in bf16 the blur
wraps white pixels to black, in fp16 its sums overflow.
"""
import copy
import os.path as osp

import pytest
import torch
from mmengine.config import Config
from mmengine.dataset import Compose
from mmengine.registry import FUNCTIONS
from mmpretrain.registry import MODELS

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


@pytest.fixture(scope='module')
def batch(imagenette_root):
    """8 Imagenette images through the ViT-B config's own pipeline and
    collate (device crops and photometric parameters drawn there)."""
    from mmengine.registry import DefaultScope
    cfg = Config.fromfile(osp.join(REPO, 'configs', 'folk_vit-b.py'))
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        pipeline = Compose(cfg.train_dataloader.dataset.pipeline)
    names = open(osp.join(imagenette_root,
                          'train.txt')).read().split('\n')[::1000][:8]
    torch.manual_seed(0)
    samples = [
        pipeline(
            dict(
                img_path=osp.join(imagenette_root,
                                  line.split()[0]),
                sample_idx=i)) for i, line in enumerate(names)
    ]
    # the blur (view 0 always, DINO's recipe) is part of what is compared
    assert all(s['data_samples'].photometric_params[0]['blur_sigma'] > 0
               for s in samples)
    collate = FUNCTIONS.get(cfg.train_dataloader.collate_fn.type)
    data = collate(samples)
    assert data['data_samples']['crop'] is not None
    assert data['data_samples']['photometric'] is not None
    return cfg, data


@pytest.mark.parametrize('dtype', [torch.bfloat16, torch.float16])
def test_configured_preprocessor_ignores_autocast(batch, dtype):
    cfg, data = batch
    pre = MODELS.build(cfg.data_preprocessor)
    plain = pre(copy.deepcopy(data), training=True)['inputs']
    with torch.autocast('cpu', dtype=dtype):
        amp = pre(copy.deepcopy(data), training=True)['inputs']
    assert set(amp) == {'views', 'filtered', 'keep'}
    for key in amp:
        for a, b in zip(amp[key], plain[key]):
            assert a.dtype == b.dtype
            assert torch.equal(a, b), key
