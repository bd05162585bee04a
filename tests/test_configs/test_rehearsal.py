"""Every shipped config trains as shipped for 2 iterations, then resumes.

See ``tests/test_configs/rehearsal.py`` for what is rehearsed and the only
changes made (model size and data), and ``docs/reliability.md``.
"""
import math
import os.path as osp

import pytest
import torch
from downstream_utils import convert_tiny
from mmengine.config import Config
from mmengine.optim import AmpOptimWrapper
from mmpretrain.registry import OPTIM_WRAPPERS
from rehearsal import CONFIGS, ITERS, REPO, kind, rehearse

#: The documented fp16 option (docs/reliability.md#mixed-precision).
FP16 = dict(optim_wrapper=dict(dtype='float16', loss_scale='dynamic'))


@pytest.fixture(scope='module')
def paths(repo_root, imagenette_root, camvid_root, tmp_path_factory):
    """Data roots and tiny converted pre-training checkpoints."""
    from mmpretrain.models import ResNet

    from folk.downstream import convert_checkpoint
    tmp = str(tmp_path_factory.mktemp('ckpt'))
    torch.manual_seed(0)
    state = {
        f'backbone.{k}': v
        for k, v in ResNet(depth=50, out_indices=(3, )).state_dict().items()
    }
    state['neck.decoder.weight'] = torch.zeros(3 * 32 * 32, 2048, 1, 1)
    src = osp.join(tmp, 'mfm_r50_epoch_1.pth')
    torch.save(dict(state_dict=state, meta=dict(epoch=1, iter=10)), src)
    r50 = osp.join(tmp, 'mfm_resnet50_mmpretrain.pth')
    convert_checkpoint(src, r50, 'mmpretrain')
    return dict(
        imagenette=imagenette_root,
        camvid=camvid_root,
        vit_mmpretrain=convert_tiny(repo_root, tmp, 'mmpretrain'),
        vit_mmseg=convert_tiny(repo_root, tmp, 'mmseg'),
        r50_mmpretrain=r50)


def test_every_config_is_rehearsed():
    """The parametrisation below is the glob of configs/: a new config is
    rehearsed by default, and the glob finds the shipped families."""
    kinds = [kind(p) for p in CONFIGS]
    assert kinds.count('pretrain') >= 8
    assert kinds.count('classification') >= 10
    assert kinds.count('segmentation') >= 4
    assert 'configs/folk_vit-b.py' in CONFIGS


def _amp_dtype(path, overrides):
    cfg = Config.fromfile(osp.join(REPO, path))
    if overrides:
        cfg.merge_from_dict(overrides)
    optim = cfg.optim_wrapper
    wrapper = OPTIM_WRAPPERS.get(optim.get('type', 'OptimWrapper'))
    if not issubclass(wrapper, AmpOptimWrapper):
        return None
    return getattr(torch, optim.get('dtype') or 'float16')


CASES = [(p, None) for p in CONFIGS] + [('configs/folk_vit-b.py', FP16)]


@pytest.mark.parametrize(
    'path,overrides',
    CASES,
    ids=[p + ('-fp16' if o else '') for p, o in CASES])
def test_rehearsal(path, overrides, paths, tmp_path):
    (first, second), runner = rehearse(path, str(tmp_path / 'wd'), paths,
                                       overrides)
    # 2 iterations, a checkpoint, then the resume continues at iteration 3
    assert first.iters == list(range(1, ITERS + 1))
    assert second.iters == list(range(ITERS + 1, 2 * ITERS + 1))
    assert runner.iter == 2 * ITERS
    # the preprocessor ran in the optim wrapper's autocast, in the config's
    # dtype, and gave the views it gives outside autocast
    dtype = _amp_dtype(path, overrides)
    assert set(first.autocast + second.autocast) == {dtype}
    assert first.mismatch == [] and second.mismatch == []
    teacher = getattr(runner.model, 'teacher', None)
    if teacher is not None:  # FOLK: the EMA teacher resumed with the run
        assert int(teacher.steps) == 2 * ITERS
    scaler = getattr(runner.optim_wrapper, 'loss_scaler', None)
    if scaler is not None and scaler.is_enabled():
        assert math.isfinite(scaler.get_scale())
