"""MFM's frequency reconstruction loss on the masked frequencies."""
import torch
from mmengine.model import BaseModule
from mmpretrain.registry import MODELS

from ...frequency import conjugate_partner


def half_spectrum_weight(mask: torch.Tensor) -> torch.Tensor:
    """Count, per ``rfft2`` bin, the full-spectrum bins of ``mask`` it holds.

    Column ``v`` of the half spectrum stands for bin ``(u, v)`` and, where
    ``(-v) mod W`` lies outside the half, also for its conjugate partner
    ``(-u mod H, -v mod W)``. Exact for any mask, symmetric or not.

    Args:
        mask (Tensor): (B, H, W) bool, full ``fft2`` layout.

    Returns:
        Tensor: (B, H, W // 2 + 1) float32 weights in {0, 1, 2}.
    """
    w = mask.shape[-1]
    m = mask.float()
    weight = m[..., :w // 2 + 1].clone()
    partner = conjugate_partner(m)  # m[-u mod H, -v mod W]
    paired = slice(1, (w + 1) // 2)  # columns whose partner is not in half
    weight[..., paired] += partner[..., paired]
    return weight


@MODELS.register_module()
class FrequencyLoss(BaseModule):
    """Spectral distance averaged over the masked-out frequencies.

    For prediction ``p`` and target ``t`` (both normalised images) the
    distance of bin ``(u, v)`` of channel ``c`` is ``|F(p) - F(t)|`` =
    ``sqrt((Re dF)^2 + (Im dF)^2)`` with the orthonormal 2-D FFT. It is
    averaged over channels and over the bins that the input filter removed
    (``keep == False``), as in MFM. FFTs and the reduction run in float32.
    The sum runs over the half spectrum of ``rfft2`` with the weights of
    :func:`half_spectrum_weight`, which gives the same value as the full
    spectrum (tested against it) with half the memory.

    Args:
        loss_weight (float): Weight of the loss. Defaults to 1.0.
    """

    def __init__(self, loss_weight: float = 1.0) -> None:
        super().__init__()
        if loss_weight < 0:
            raise ValueError(
                f'FrequencyLoss: loss_weight must be >= 0, got {loss_weight}')
        self.loss_weight = loss_weight

    def forward(self, pred: torch.Tensor, target: torch.Tensor,
                keep: torch.Tensor) -> torch.Tensor:
        """Compute the loss.

        Args:
            pred (Tensor): Reconstruction (B, C, H, W).
            target (Tensor): Normalised unfiltered image (B, C, H, W).
            keep (Tensor): (B, H, W) bool, True = frequency was visible.

        Returns:
            Tensor: scalar loss.
        """
        if pred.shape != target.shape:
            raise ValueError(f'pred {tuple(pred.shape)} and target '
                             f'{tuple(target.shape)} differ in shape')
        with torch.autocast(pred.device.type, enabled=False):
            # The input is real, so F(-u, -v) = conj(F(u, v)): the half
            # spectrum of rfft2 holds every distance, at half the memory
            # and FFT work of fft2. Each half-spectrum bin is weighted by the
            # number of masked full-spectrum bins it stands for.
            diff = torch.fft.rfft2(
                pred.float() - target.float(),
                norm='ortho')  # (B, C, H, W // 2 + 1)
            masked = ~keep  # (B, H, W)
            weight = half_spectrum_weight(masked)  # (B, H, W // 2 + 1)
            num = masked.sum() * pred.shape[1]
            loss = (diff.abs() * weight.unsqueeze(1)).sum()
            loss = loss / num.clamp(min=1).float()
        return self.loss_weight * loss
