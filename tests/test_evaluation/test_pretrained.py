"""Loading a pre-training model for inference, and the evaluation floor."""
import ast
import glob
import os.path as osp

import torch
from mmengine.config import Config

from folk.evaluation import build_model, load_pretrained_model

PACKAGE = osp.dirname(osp.dirname(osp.abspath(__import__('folk').__file__)))


def _imported_modules(path: str):
    tree = ast.parse(open(path).read(), filename=path)
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            yield '.' * node.level + (node.module or '')
        elif isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name


def test_evaluation_imports_no_upper_floor():
    """``folk.evaluation`` sits below the engine and the downstream tools."""
    files = glob.glob(osp.join(PACKAGE, 'folk', 'evaluation', '*.py'))
    assert files
    upper = ('..engine', '..downstream', 'folk.engine', 'folk.downstream')
    upward = [(osp.basename(path), name) for path in files
              for name in _imported_modules(path) if name.startswith(upper)]
    assert not upward, f'upward imports in folk.evaluation: {upward}'


def test_syncbn_config_loads_on_cpu_in_eval_mode(repo_root, tmp_path):
    """A GPU config (SyncBN, AMP) loads strictly and runs on the CPU."""
    config = osp.join(repo_root, 'configs', 'folk',
                      'folk_resnet50_8xb128-amp-coslr-300e_in1k.py')
    small = {
        'model.projector.hidden_channels': 64,
        'model.projector.bottleneck_channels': 32,
        'model.projector.out_channels': 64,
        'model.distill_head.loss.out_dim': 64,
    }
    cfg = Config.fromfile(config)
    cfg.merge_from_dict(small)
    reference = build_model(cfg)
    checkpoint = str(tmp_path / 'pre.pth')
    torch.save({'state_dict': reference.state_dict()}, checkpoint)
    model = load_pretrained_model(config, checkpoint, 'cpu', small)
    assert not model.training
    assert type(model.backbone.norm1).__name__ == 'SyncBatchNorm'
    with torch.no_grad():
        out = model.backbone(torch.rand(2, 3, 64, 64))
    assert out[-1].shape == (2, 2048, 2, 2)
    assert torch.equal(model.backbone.conv1.weight,
                       reference.backbone.conv1.weight)
