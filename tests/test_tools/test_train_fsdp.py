"""tools/train.py with the ViT-L FSDP config: FlexibleRunner, 2 processes.

The shipped config (``runner_type='FlexibleRunner'``, ``FSDPStrategy`` with
``folk_fsdp_wrap_policy`` and full state dicts) runs through
``torch.distributed.run`` on two gloo processes (CPU), its model shrunk to
a 32-d, 2-layer ViT and its data to a folder of 12 images; the checkpoint it
writes converts with ``tools/model_converters/folk_to_mmpretrain.py``.
"""
import os
import os.path as osp
import socket
import subprocess
import sys

import cv2
import numpy as np
import torch
from mmengine.config import Config

from folk.engine.checkpoint import safe_torch_load

CONFIG = osp.join('configs', 'folk',
                  'folk_vit-large-p16_fsdp-8xb128-amp-coslr-300e_in1k.py')
CHILD = """_base_ = [{base!r}]
vit_tiny = dict(
    _delete_=True, embed_dims=32, num_layers=2, num_heads=2,
    feedforward_channels=64)
model = dict(
    backbone=dict(arch=vit_tiny, img_size=32, patch_size=8),
    neck=dict(in_channels=32, encoder_stride=8),
    projector=dict(in_channels=32, hidden_channels=64,
                   bottleneck_channels=16, out_channels=64),
    distill_head=dict(loss=dict(out_dim=64)))
train_dataloader = dict(
    batch_size=2, num_workers=0, persistent_workers=False, pin_memory=False,
    dataset=dict(
        _delete_=True, type='ImageFolderDataset', data_root={data!r},
        pipeline=[
            dict(type='LoadImageFromFileSafe'),
            dict(type='FOLKViews', crop_size=32, crop_scale=(0.25, 1.0),
                 photometric='device', crop='device'),
            dict(type='RandomFrequencyFilter',
                 filters={{{{_base_.folk_filters}}}}),
            dict(type='PackInputs', meta_keys=[
                'img_path', 'freq_kind', 'freq_param',
                'photometric_params', 'crop_params'])]))
train_cfg = dict(max_epochs=1)
default_hooks = dict(logger=dict(interval=1))
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def test_vit_l_config_is_fsdp_with_the_folk_policy(repo_root):
    cfg = Config.fromfile(osp.join(repo_root, CONFIG))
    assert cfg.runner_type == 'FlexibleRunner'
    assert cfg.strategy.type == 'FSDPStrategy'
    assert cfg.strategy.state_dict_cfg == 'full'
    assert cfg.strategy.model_wrapper.auto_wrap_policy.type == \
        'folk_fsdp_wrap_policy'
    assert cfg.model.backbone.arch == 'l'
    assert cfg.model.neck.in_channels == cfg.model.projector.in_channels \
        == 1024


def test_flexible_runner_fsdp_two_processes_and_convert(repo_root, tmp_path):
    data = tmp_path / 'images'
    data.mkdir()
    rng = np.random.default_rng(0)
    for i in range(12):
        cv2.imwrite(
            str(data / f'{i}.jpg'),
            rng.integers(0, 255, (48, 40, 3), dtype=np.uint8))
    child = tmp_path / 'vit-tiny_fsdp.py'
    child.write_text(
        CHILD.format(base=osp.join(repo_root, CONFIG), data=str(data)))
    work = tmp_path / 'work'
    env = dict(os.environ, PYTHONWARNINGS='ignore', OMP_NUM_THREADS='1')
    proc = subprocess.run([
        sys.executable, '-m', 'torch.distributed.run', '--nproc_per_node', '2',
        '--master_port',
        str(_free_port()),
        osp.join(repo_root, 'tools', 'train.py'),
        str(child), '--launcher', 'pytorch', '--work-dir',
        str(work), '--cfg-options', 'custom_hooks.1.enable=False'
    ],
                          cwd=repo_root,
                          env=env,
                          capture_output=True,
                          text=True,
                          timeout=600)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-5000:]
    assert 'World size: 2' in out
    # FlexibleRunner + FSDPStrategy wrapped every layer in its own unit
    # (the optimizer's parameter names; a Runner would have run DDP)
    assert ('backbone._fsdp_wrapped_module.layers.0._fsdp_wrapped_module.'
            in out)
    # 12 images / (2 processes x 2): 3 iterations
    assert 'Epoch(train) [1][3/3]' in out
    ckpt = safe_torch_load(str(work / 'epoch_1.pth'))
    state = ckpt['state_dict']
    # full, unprefixed names; the teacher took 3 EMA steps
    assert not [k for k in state if '_fsdp_wrapped_module' in k]
    assert int(state['teacher.steps']) == 3
    assert state['backbone.layers.1.ffn.layers.1.weight'].shape == (32, 64)
    converted = tmp_path / 'converted.pth'
    conv = subprocess.run([
        sys.executable,
        osp.join(repo_root, 'tools', 'model_converters',
                 'folk_to_mmpretrain.py'),
        str(work / 'epoch_1.pth'),
        str(converted)
    ],
                          cwd=repo_root,
                          env=env,
                          capture_output=True,
                          text=True,
                          timeout=300)
    assert conv.returncode == 0, conv.stdout + conv.stderr
    weights = safe_torch_load(str(converted))['state_dict']
    for key, value in weights.items():
        torch.testing.assert_close(
            value, state[f'teacher.module.{key}'], msg=key)
