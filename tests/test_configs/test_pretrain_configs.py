"""Every shipped pre-training config builds: model, pipeline, optimizer."""
import glob
import os.path as osp

import pytest
from mmengine.config import Config
from mmengine.dataset import Compose
from mmpretrain.registry import MODELS

from folk.engine import adapt_cfg_to_device

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
CONFIGS = sorted(
    glob.glob(osp.join(REPO, 'configs', 'folk', '*.py')) +
    glob.glob(osp.join(REPO, 'configs', 'mfm', '*.py')) +
    glob.glob(osp.join(REPO, 'configs', 'demo', '*.py')) +
    [osp.join(REPO, 'configs', 'folk_vit-b.py')])


@pytest.mark.parametrize(
    'path', CONFIGS, ids=[osp.relpath(p, REPO) for p in CONFIGS])
def test_pretrain_config_builds(path):
    cfg = Config.fromfile(path)
    algo = osp.basename(path).split('_')[0].upper()
    assert cfg.model.type == algo
    model_cfg = dict(cfg.model, data_preprocessor=cfg.data_preprocessor)
    model = MODELS.build(model_cfg)
    assert type(model).__name__ == algo
    assert type(model.data_preprocessor).__name__ == \
        'FrequencyFilterPreprocessor'
    assert (algo == 'FOLK') == hasattr(model, 'teacher')
    # resume checks that no config's custom_hooks list can drop
    assert cfg.default_hooks.run_scale.type == 'RunScaleHook'
    assert cfg.default_hooks.epoch_seed.type == 'EpochSeedHook'
    pipeline = Compose(cfg.train_dataloader.dataset.pipeline)
    names = [type(t).__name__ for t in pipeline.transforms]
    assert names[0] == 'LoadImageFromFileSafe'
    assert 'RandomFrequencyFilter' in names and names[-1] == 'PackInputs'
    # no short last batch (recompiles a compiled backbone, tiny SyncBN)
    assert cfg.train_dataloader.drop_last is True
    views = pipeline.transforms[1]
    if algo == 'FOLK':
        # workers decode and draw; crops and photometric run on the device
        assert (views.crop, views.photometric) == ('device', 'device')
        assert {'crop_params',
                'photometric_params'} <= set(pipeline.transforms[-1].meta_keys)
        assert cfg.train_dataloader.collate_fn.type == 'folk_views_collate'
    else:  # MFM's recipe: one crop in the workers
        assert (views.crop, views.photometric) == ('cpu', 'none')
    if 'demo' not in path:
        # the *_custom configs read a folder of one's own images
        assert cfg.train_dataloader.dataset.data_root == (
            'data/my_images/' if '_custom' in path else 'data/imagenet/')
        assert cfg.optim_wrapper.type == 'SyncFreeAmpOptimWrapper'
        assert cfg.optim_wrapper.dtype == 'bfloat16'
        assert cfg.train_cfg.max_epochs == 300
        assert cfg.train_dataloader.batch_size == 128
        assert cfg.resume is True
        # pinned batches are copied to the GPU without blocking the host
        assert cfg.train_dataloader.pin_memory is True
        assert model.data_preprocessor._non_blocking is True
        # the lr is meant for 8 x 128: scaled by the real total batch
        assert cfg.auto_scale_lr == dict(enable=True, base_batch_size=1024)
        # fixed-size CNN input: cuDNN autotuning (ViT: no convolutions
        # besides the patch embedding)
        assert cfg.env_cfg.cudnn_benchmark is ('resnet50' in path)
    # fused AdamW on CUDA, the usual one on a CPU
    assert cfg.optim_wrapper.optimizer.fused is True
    cpu = adapt_cfg_to_device(cfg)
    assert cpu.optim_wrapper.type == 'SyncFreeOptimWrapper'
    assert 'loss_scale' not in cpu.optim_wrapper
    assert 'fused' not in cpu.optim_wrapper.optimizer


def test_headline_is_the_vit_b_folk_recipe():
    cfg = Config.fromfile(osp.join(REPO, 'configs', 'folk_vit-b.py'))
    assert cfg.model.backbone.arch == 'b'
    assert cfg.model.backbone.patch_size == 16
    assert cfg.model.projector.out_channels == 65536
    loss = cfg.model.distill_head.loss
    assert (loss.student_temp, loss.warmup_teacher_temp, loss.teacher_temp,
            loss.warmup_epochs) == (0.1, 0.04, 0.07, 30)
    assert cfg.model.teacher_momentum == 0.996
    assert cfg.optim_wrapper.optimizer.lr == pytest.approx(1.5e-4 * 4)
    assert cfg.optim_wrapper.clip_grad.max_norm == 3.0
    filters = cfg.train_dataloader.dataset.pipeline[2].filters
    assert [f['kind'] for f in filters] == ['com', 'rcom']
    assert filters[0]['ratios'] == (0.005, 0.01, 0.05)


def test_train_loader_drops_the_short_last_batch(imagenette_root):
    from mmengine.runner import Runner
    cfg = Config.fromfile(osp.join(REPO, 'configs', 'folk_vit-b.py'))
    loader_cfg = cfg.train_dataloader
    loader_cfg.update(batch_size=7, num_workers=0, persistent_workers=False)
    loader_cfg.dataset = dict(
        type='CustomDataset',
        data_root=imagenette_root,
        ann_file='val.txt',
        data_prefix='',
        with_label=True,
        pipeline=[])
    loader = Runner.build_dataloader(loader_cfg)
    size = len(loader.dataset)
    assert size % 7 != 0
    assert len(loader) == size // 7
