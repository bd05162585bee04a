"""MFM's frequency reconstruction loss on the masked frequencies."""
import torch
from mmengine.model import BaseModule

from mmpretrain.registry import MODELS


@MODELS.register_module()
class FrequencyLoss(BaseModule):
    """Spectral distance averaged over the masked-out frequencies.

    For prediction ``p`` and target ``t`` (both normalised images) the
    distance of bin ``(u, v)`` of channel ``c`` is ``|F(p) - F(t)|`` =
    ``sqrt((Re dF)^2 + (Im dF)^2)`` with the orthonormal 2-D FFT. It is
    averaged over channels and over the bins that the input filter removed
    (``keep == False``), as in MFM. FFTs and the reduction run in float32.

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
            diff = torch.fft.fft2(pred.float() - target.float(), norm='ortho')
            dist = diff.abs()  # (B, C, H, W)
            masked = (~keep).unsqueeze(1).float()  # (B, 1, H, W)
            num = masked.sum() * pred.shape[1]
            loss = (dist * masked).sum() / num.clamp(min=1.0)
        return self.loss_weight * loss
