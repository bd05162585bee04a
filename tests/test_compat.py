"""Each fix of folk.compat, against the behaviour it replaces."""
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from folk import compat


def test_apply_is_idempotent():
    import mmcv
    from mmengine.dist import utils as dist_utils
    before = (mmcv.adjust_hue, dist_utils._init_dist_pytorch)
    compat.apply()
    compat._APPLIED = False
    compat.apply()  # patches recognise themselves and are not stacked
    assert (mmcv.adjust_hue, dist_utils._init_dist_pytorch) == before


def test_dist_init_uses_gloo_without_cuda(monkeypatch):
    """mmengine would call torch.cuda.set_device and use NCCL."""
    from mmengine.dist import utils as dist_utils
    calls = {}
    monkeypatch.setattr(torch.cuda, 'is_available', lambda: False)
    monkeypatch.setattr(torch.cuda, 'set_device',
                        lambda *a: pytest.fail('set_device called'))
    monkeypatch.setattr(torch.distributed, 'init_process_group',
                        lambda backend, **kw: calls.update(backend=backend))
    with pytest.warns(UserWarning, match='gloo'):
        dist_utils._init_dist_pytorch('nccl')
    assert calls == {'backend': 'gloo'}


def test_mmseg_imports_under_mmcv_lite():
    import mmcv.ops
    import mmseg.models  # noqa: F401  (imports mmcv.ops at module level)
    assert hasattr(mmcv.ops, 'point_sample')


def test_point_sample_matches_grid_sample_definition():
    torch.manual_seed(0)
    feat = torch.randn(2, 3, 5, 7)
    points = torch.rand(2, 4, 2)  # (x, y) in [0, 1]
    out = compat.point_sample(feat, points, align_corners=False)
    assert out.shape == (2, 3, 4)
    # sample the centre of pixel (row 2, col 3) exactly
    centre = torch.tensor([[[(3 + 0.5) / 7, (2 + 0.5) / 5]]]).repeat(2, 1, 1)
    torch.testing.assert_close(
        compat.point_sample(feat, centre)[..., 0], feat[:, :, 2, 3])
    grid = F.grid_sample(
        feat, 2 * points[:, :, None] - 1, align_corners=False)[..., 0]
    torch.testing.assert_close(out, grid)


def test_sigmoid_focal_loss_reference_values():
    pred = torch.tensor([[2.0, -1.0, 0.5]])
    target = torch.tensor([1])
    loss = compat.sigmoid_focal_loss(
        pred, target, gamma=2.0, alpha=0.25, reduction='none')
    p = torch.sigmoid(pred)
    expected = torch.stack([
        -(1 - 0.25) * p[0, 0]**2 * torch.log(1 - p[0, 0]),
        -0.25 * (1 - p[0, 1])**2 * torch.log(p[0, 1]),
        -(1 - 0.25) * p[0, 2]**2 * torch.log(1 - p[0, 2]),
    ])[None]
    torch.testing.assert_close(loss, expected)
    # target == num_classes is background: every class negative
    bg = compat.sigmoid_focal_loss(pred, torch.tensor([3]), reduction='sum')
    assert bg > 0


@pytest.mark.parametrize('backend', ['cv2', 'pillow'])
def test_negative_hue_shift_wraps_like_uint8(backend):
    import mmcv
    rng = np.random.default_rng(0)
    img = rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)
    out = mmcv.adjust_hue(img, -0.1, backend=backend)  # numpy 2: overflow
    assert out.shape == img.shape and out.dtype == img.dtype
    # -0.1 wraps to the same hue rotation as +(1 - 0.1) would
    shift = int(-0.1 * 255) % 256
    if backend == 'cv2':
        import cv2
        hsv = cv2.cvtColor(img, cv2.COLOR_BGR2HSV_FULL)
        hsv[..., 0] = (hsv[..., 0].astype(int) + shift) % 256
        ref = cv2.cvtColor(hsv, cv2.COLOR_HSV2BGR_FULL)
        np.testing.assert_array_equal(out, ref)
    assert not np.array_equal(out, img)
    # non-negative shifts still go through mmcv's own function
    np.testing.assert_array_equal(
        mmcv.adjust_hue(img, 0.1, backend=backend),
        mmcv.adjust_hue.__wrapped__(img, 0.1, backend=backend))
    with pytest.raises(OverflowError):  # what the fix is for
        mmcv.adjust_hue.__wrapped__(img, -0.1, backend=backend)
