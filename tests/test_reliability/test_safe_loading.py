"""Checkpoints are unpickled with weights_only=True and an allow-list.

A checkpoint with an arbitrary pickled object (here one whose unpickling
would create a marker file) is refused by every load path, and the marker is
never created; the project's own and MMPretrain-format checkpoints load.
"""
import ast
import glob
import os.path as osp
import pathlib
from collections import OrderedDict

import numpy as np
import pytest
import torch
import torch.nn as nn
from mmengine.runner import load_checkpoint
from mmengine.runner.checkpoint import (CheckpointLoader, _load_checkpoint,
                                        load_from_http)
from mmpretrain.models import VisionTransformer
from runner_utils import REPO, demo_cfg, run

from folk.engine.checkpoint import safe_torch_load


class Payload:
    """Unpickling this calls pathlib.Path.touch(marker): arbitrary code."""

    def __init__(self, marker):
        self.marker = pathlib.Path(marker)

    def __reduce__(self):
        return (pathlib.Path.touch, (self.marker, ))


@pytest.fixture
def evil(tmp_path):
    marker = tmp_path / 'PWNED'
    path = tmp_path / 'downloads' / 'evil.pth'
    path.parent.mkdir()
    torch.save(
        {
            'state_dict': {
                'weight': torch.zeros(2, 2)
            },
            'meta': Payload(marker)
        }, str(path))
    assert not marker.exists()
    return str(path), marker


def test_safe_torch_load_refuses_pickled_code(evil):
    path, marker = evil
    with pytest.raises(RuntimeError) as err:
        safe_torch_load(path)
    assert path in str(err.value)
    assert 'Unsupported global' in str(err.value)  # names what was refused
    assert not marker.exists()


def test_mmengine_load_paths_refuse_pickled_code(evil):
    path, marker = evil
    with pytest.raises(RuntimeError, match='evil.pth'):
        load_checkpoint(nn.Linear(2, 2), path)
    with pytest.raises(RuntimeError, match='evil.pth'):
        _load_checkpoint(path)  # what Runner.resume / load_from use
    # https:// through torch.hub, whose default is weights_only=False; the
    # file is already in the download cache, so nothing is downloaded
    with pytest.raises(RuntimeError, match='evil.pth'):
        load_from_http(
            'https://example.invalid/evil.pth', model_dir=osp.dirname(path))
    assert not marker.exists()


def test_runner_resume_refuses_pickled_code(tmp_path, imagenette_root, evil):
    path, marker = evil
    cfg = demo_cfg(
        tmp_path / 'run',
        imagenette_root,
        max_iters=1,
        batch_size=2,
        resume=True,
        load_from=path)
    with pytest.raises(RuntimeError, match='evil.pth'):
        run(cfg)
    assert not marker.exists()


def test_own_and_mmpretrain_checkpoints_load(tmp_path, imagenette_root):
    # the project's own checkpoint: message hub, numpy, optimizer...
    _, runner = run(
        demo_cfg(
            tmp_path, imagenette_root, max_iters=1, batch_size=2,
            ckpt_every=1))
    own = osp.join(tmp_path, 'iter_1.pth')
    ckpt = safe_torch_load(own)
    assert {'meta', 'state_dict', 'message_hub', 'optimizer'} <= set(ckpt)
    runner.resume(own)  # mmengine's resume path
    assert runner.iter == 1

    # MMPretrain-format (publish_model) checkpoint with numpy in its meta
    vit = VisionTransformer(
        arch=dict(
            embed_dims=32, num_layers=1, num_heads=2, feedforward_channels=64),
        img_size=32,
        patch_size=8)
    path = str(tmp_path / 'vit_mmpretrain.pth')
    torch.save(
        {
            'meta': {
                'mmpretrain_version': '1.2.0',
                'epoch': 300,
                'dataset_meta': {
                    'classes': ['a', 'b']
                },
                'best_score': np.float64(0.5),
                'hist': np.arange(3)
            },
            'state_dict':
            OrderedDict((k, v.clone()) for k, v in vit.state_dict().items())
        }, path)
    fresh = VisionTransformer(
        arch=dict(
            embed_dims=32, num_layers=1, num_heads=2, feedforward_channels=64),
        img_size=32,
        patch_size=8)
    loaded = load_checkpoint(fresh, path, strict=True)
    assert loaded['meta']['best_score'] == 0.5
    torch.testing.assert_close(fresh.pos_embed, vit.pos_embed)


def test_mmengine_uses_the_safe_loaders():
    from mmengine.runner import checkpoint as ckpt_mod

    from folk.engine.checkpoint import safe_load_url
    assert getattr(CheckpointLoader._schemes[''], '_folk_patched', False)
    assert ckpt_mod.load_url is safe_load_url
    with pytest.raises(ValueError, match='weights_only=False'):
        safe_load_url('https://example.invalid/x.pth', weights_only=False)


def _python_files(*dirs):
    for d in dirs:
        yield from glob.glob(osp.join(REPO, d, '**', '*.py'), recursive=True)


def _calls(path):
    tree = ast.parse(open(path).read(), path)
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            yield node


def _is_false(node):
    return isinstance(node, ast.Constant) and node.value is False


def test_no_unsafe_torch_load_in_the_repository():
    """No call passes weights_only=False anywhere in the repository; every
    torch.load in code that ships (projects/folk/, tools/) passes
    weights_only=True explicitly (or goes through safe_torch_load)."""
    this = osp.abspath(__file__)  # calls weights_only=False to see it refused
    unsafe = [
        f'{path}:{call.lineno}'
        for path in _python_files('projects', 'tools', 'tests', 'configs')
        if osp.abspath(path) != this for call in _calls(path)
        for kw in call.keywords
        if kw.arg == 'weights_only' and _is_false(kw.value)
    ]
    assert not unsafe, unsafe

    missing = []
    for path in _python_files('projects', 'tools'):
        for call in _calls(path):
            func = call.func
            if not (isinstance(func, ast.Attribute) and func.attr == 'load'
                    and getattr(func.value, 'id', '') == 'torch'):
                continue
            value = {k.arg: k.value for k in call.keywords}.get('weights_only')
            if not (isinstance(value, ast.Constant) and value.value is True):
                missing.append(f'{path}:{call.lineno}')
    assert not missing, missing
