"""FrequencyLoss equals MFM's full-spectrum definition."""
import numpy as np
import pytest
import torch

from folk.frequency import filter_images, kind_to_index
from folk.models.losses import FrequencyLoss
from folk.models.losses.frequency_loss import half_spectrum_weight


def full_spectrum_loss(pred, target, keep):
    """MFM's definition in float64: mean of |fft2(p - t)| over masked bins.

    Averaged over every channel and every full-spectrum bin with
    ``keep == False``.
    """
    diff = np.fft.fft2(
        (pred - target).astype(np.float64), axes=(-2, -1),
        norm='ortho')  # (B, C, H, W)
    masked = ~keep[:, None]  # (B, 1, H, W)
    masked = np.broadcast_to(masked, diff.shape)
    return np.abs(diff)[masked].mean()


SHAPES = [(2, 3, 8, 8), (2, 3, 6, 7), (3, 1, 7, 9), (1, 3, 16, 10)]


@pytest.mark.parametrize('shape', SHAPES)
def test_value_equals_full_spectrum_for_any_mask(shape):
    g = torch.Generator().manual_seed(sum(shape))
    pred = torch.randn(shape, generator=g)
    target = torch.randn(shape, generator=g)
    b, _, h, w = shape
    keep = torch.rand(b, h, w, generator=g) < 0.4  # not symmetric
    loss = FrequencyLoss()(pred, target, keep)
    ref = full_spectrum_loss(pred.numpy(), target.numpy(), keep.numpy())
    assert loss.item() == pytest.approx(ref, rel=1e-5)


def test_value_equals_full_spectrum_for_folk_and_mfm_masks():
    g = torch.Generator().manual_seed(0)
    images = torch.rand(4, 3, 32, 32, generator=g)
    kinds = kind_to_index(['com', 'rcom', 'lowpass', 'highpass'])
    _, keep = filter_images(images, kinds, torch.tensor([0.05, 0.05, 4., 4.]))
    pred = torch.randn(4, 3, 32, 32, generator=g)
    loss = FrequencyLoss(loss_weight=2.0)(pred, images, keep)
    ref = full_spectrum_loss(pred.numpy(), images.numpy(), keep.numpy())
    assert loss.item() == pytest.approx(2.0 * ref, rel=1e-5)


@pytest.mark.parametrize('shape', SHAPES[:2])
def test_gradient_equals_full_spectrum_gradient(shape):
    g = torch.Generator().manual_seed(1)
    pred = torch.randn(shape, generator=g, dtype=torch.float64)
    target = torch.randn(shape, generator=g, dtype=torch.float64)
    b, _, h, w = shape
    keep = torch.rand(b, h, w, generator=g) < 0.5
    pred_a = pred.clone().requires_grad_(True)
    FrequencyLoss()(pred_a, target, keep).backward()
    pred_b = pred.clone().requires_grad_(True)
    diff = torch.fft.fft2(pred_b - target, norm='ortho')
    masked = (~keep)[:, None].expand(diff.shape)
    diff.abs()[masked].mean().backward()
    torch.testing.assert_close(
        pred_a.grad.double(), pred_b.grad, rtol=1e-4, atol=1e-7)


@pytest.mark.parametrize('hw', [(8, 8), (6, 7), (5, 9)])
def test_half_spectrum_weight_counts_every_bin_once(hw):
    h, w = hw
    mask = torch.rand(3, h, w, generator=torch.Generator().manual_seed(2)) > .5
    weight = half_spectrum_weight(mask)
    assert weight.shape == (3, h, w // 2 + 1)
    torch.testing.assert_close(
        weight.sum((-2, -1)),
        mask.sum((-2, -1)).float())
    # An all-True mask counts each bin once or with its partner.
    full = half_spectrum_weight(torch.ones(1, h, w, dtype=torch.bool))
    assert set(full.unique().tolist()) <= {1.0, 2.0}
    assert full[0, :, 0].eq(1).all()


def test_nothing_masked_gives_zero():
    pred = torch.randn(2, 3, 8, 8)
    keep = torch.ones(2, 8, 8, dtype=torch.bool)
    assert FrequencyLoss()(pred, torch.zeros_like(pred), keep).item() == 0


def test_bf16_prediction_is_computed_in_float32():
    g = torch.Generator().manual_seed(3)
    pred = torch.randn(2, 3, 8, 8, generator=g)
    target = torch.randn(2, 3, 8, 8, generator=g)
    keep = torch.rand(2, 8, 8, generator=g) < 0.5
    with torch.autocast('cpu', dtype=torch.bfloat16):
        loss = FrequencyLoss()(pred.bfloat16(), target, keep)
    assert loss.dtype == torch.float32
    ref = full_spectrum_loss(pred.bfloat16().float().numpy(), target.numpy(),
                             keep.numpy())
    assert loss.item() == pytest.approx(ref, rel=1e-5)
