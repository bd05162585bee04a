"""prepare_train_cfg: hooks switched off by enable=False, data checked."""
import os.path as osp

import cv2
import numpy as np
import pytest
from mmengine.config import Config

from folk.datasets import TrainDataError
from folk.engine import drop_disabled_hooks, prepare_train_cfg

IN1K = osp.join('configs', 'folk',
                'folk_vit-base-p16_8xb128-amp-coslr-300e_in1k.py')


def test_knn_monitor_of_the_base_can_be_switched_off(tmp_path, repo_root):
    cfg = Config.fromfile(osp.join(repo_root, IN1K))
    assert cfg.custom_hooks[1]['type'] == 'KNNMonitorHook'
    # what --cfg-options custom_hooks.1.enable=False does
    cfg.merge_from_dict({'custom_hooks.1.enable': False})
    cv2.imwrite(str(tmp_path / 'a.jpg'), np.zeros((8, 8, 3), np.uint8))
    cfg.train_dataloader.dataset = dict(
        type='ImageFolderDataset', data_root=str(tmp_path))
    prepare_train_cfg(cfg)
    assert [h['type'] for h in cfg.custom_hooks
            ] == ['NonFiniteLossHook', 'CollapseMonitorHook']
    assert drop_disabled_hooks(cfg) == []


def test_missing_imagenet_is_reported(tmp_path, repo_root):
    cfg = Config.fromfile(osp.join(repo_root, IN1K))
    cfg.train_dataloader.dataset.data_root = str(tmp_path / 'imagenet')
    with pytest.raises(TrainDataError, match='does not exist'):
        prepare_train_cfg(cfg)
