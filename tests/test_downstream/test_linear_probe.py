"""MultiBlockClsViT: DINO's multi-block [CLS] linear-probe feature."""
import pytest
import torch
from downstream_utils import IMG, PATCH, TINY_ARCH, convert_tiny

from folk.downstream import MultiBlockClsViT, check_loaded_keys
from folk.engine.checkpoint import safe_torch_load


def _vit(**kwargs):
    torch.manual_seed(0)
    vit = MultiBlockClsViT(
        arch=dict(TINY_ARCH), img_size=IMG, patch_size=PATCH, **kwargs)
    vit.eval()
    return vit


@pytest.mark.parametrize('blocks,avgpool', [(4, False), (1, True), (2, True)])
def test_feature_is_dinos(blocks, avgpool):
    """[CLS] of the last n blocks, each through the final norm, + mean of
    the last block's normalised patch tokens (DINO eval_linear.py)."""
    from mmpretrain.models import VisionTransformer
    vit = _vit(num_blocks=blocks, with_avgpool=avgpool)
    ref = VisionTransformer(
        arch=dict(TINY_ARCH),
        img_size=IMG,
        patch_size=PATCH,
        out_type='raw',
        out_indices=list(range(4)),
        final_norm=False)
    ref.eval()
    missing, unexpected = ref.load_state_dict(vit.state_dict(), strict=False)
    assert missing == [] and unexpected == ['ln1.weight', 'ln1.bias']
    x = torch.randn(2, 3, IMG, IMG)
    with torch.no_grad():
        (feat, ) = vit(x)
        tokens = [vit.ln1(t) for t in ref(x)]  # (B, 1 + N, C) per block
    expected = [t[:, 0] for t in tokens[-blocks:]]
    if avgpool:
        expected.append(tokens[-1][:, 1:].mean(dim=1))
    assert feat.shape == (2, 192 * (blocks + avgpool))
    assert vit.out_channels == 192 * (blocks + avgpool)
    torch.testing.assert_close(feat, torch.cat(expected, dim=-1))


def test_loads_a_converted_checkpoint(repo_root, tmp_path):
    """Same parameters and names as VisionTransformer: nothing missing,
    nothing unexpected (the final norm ln1 is used)."""
    sd = safe_torch_load(convert_tiny(repo_root, str(tmp_path), 'mmpretrain'))
    result = check_loaded_keys(_vit(), sd, prefix='backbone.')
    assert result.missing == [] and result.unexpected == []
    assert result.matched == len(_vit().state_dict())


def test_frozen_stages_freeze_everything():
    vit = _vit(frozen_stages=TINY_ARCH['num_layers'])
    assert all(not p.requires_grad for p in vit.parameters())


@pytest.mark.parametrize('kwargs,match', [
    (dict(out_indices=[3]), 'sets .*out_indices'),
    (dict(final_norm=False), 'sets .*final_norm'),
    (dict(num_blocks=0), 'num_blocks must be >= 1'),
])
def test_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        _vit(**kwargs)
