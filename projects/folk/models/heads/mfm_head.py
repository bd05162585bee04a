"""MFM reconstruction head: frequency loss of the decoded image."""
import torch
from mmengine.model import BaseModule
from mmpretrain.registry import MODELS


@MODELS.register_module()
class MFMHead(BaseModule):
    """Head for masked frequency modelling (MFM and FOLK).

    The decoder (MMPretrain's :class:`SimMIMLinearDecoder`, a 1x1 conv and
    pixel shuffle) is the algorithm's ``rec_neck``; this head only holds the
    loss, like :class:`mmpretrain.models.SimMIMHead`.

    Args:
        loss (dict): Config of the loss, e.g. ``dict(type='FrequencyLoss')``.
    """

    def __init__(self, loss: dict) -> None:
        super().__init__()
        self.loss_module = MODELS.build(loss)

    def loss(self, pred: torch.Tensor, target: torch.Tensor,
             keep: torch.Tensor) -> torch.Tensor:
        """Frequency loss.

        Args:
            pred (Tensor): Reconstruction (B, 3, H, W).
            target (Tensor): Normalised unfiltered view (B, 3, H, W).
            keep (Tensor): (B, H, W) bool, True = frequency visible.

        Returns:
            Tensor: scalar loss.
        """
        return self.loss_module(pred, target, keep)
