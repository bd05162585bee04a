"""``knn_eval.py`` runs the backbone in the online monitor's dtype."""
import importlib.util
import os.path as osp

import pytest
import torch
from mmengine.config import Config


def _tool(repo_root):
    path = osp.join(repo_root, 'tools', 'analysis_tools', 'knn_eval.py')
    spec = importlib.util.spec_from_file_location('knn_eval', path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize('config,options,device,dtype', [
    ('configs/folk_vit-b.py', None, 'cuda', torch.bfloat16),
    ('configs/folk_vit-b.py', None, 'cuda:1', torch.bfloat16),
    ('configs/folk_vit-b.py', dict(optim_wrapper=dict(dtype='float16')),
     'cuda', torch.float16),
    ('configs/folk_vit-b.py', None, 'cpu', None),
    ('configs/demo/folk_vit-tiny-p8_1xb32-200i_imagenette128.py', None, 'cuda',
     None),
])
def test_monitor_dtype(repo_root, config, options, device, dtype):
    cfg = Config.fromfile(osp.join(repo_root, config))
    if options:
        cfg.merge_from_dict(options)
    assert _tool(repo_root).monitor_dtype(cfg, device) == dtype
