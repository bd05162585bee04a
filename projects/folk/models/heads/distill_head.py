"""Cross-view self-distillation head of FOLK."""
from typing import Dict, Sequence

import torch
from mmengine.model import BaseModule
from mmpretrain.registry import MODELS


@MODELS.register_module()
class DistillHead(BaseModule):
    """Pairs each filtered student view with the *other* unfiltered view.

    With views ``u``, ``v``: ``student(u~)`` learns ``teacher(v)`` and
    ``student(v~)`` learns ``teacher(u)``; the two terms are averaged. The
    pairing, the teacher's centring and sharpening and the centre update
    (in training mode) are done by the loss (:class:`DistillLoss`) in one
    call, as :class:`mmpretrain.models.heads.DINOHead` does.

    Args:
        loss (dict): Config of the loss, e.g. ``dict(type='DistillLoss')``.
    """

    def __init__(self, loss: dict) -> None:
        super().__init__()
        self.loss_module = MODELS.build(loss)

    def loss(self, student: Sequence[torch.Tensor],
             teacher: Sequence[torch.Tensor]) -> Dict[str, torch.Tensor]:
        """Compute the distillation loss and the teacher's entropy.

        Args:
            student (list[Tensor]): Student logits of the filtered views,
                each (B, K).
            teacher (list[Tensor]): Teacher logits of the unfiltered views,
                each (B, K), in the same view order.

        Returns:
            dict[str, Tensor]: ``loss_distill`` (scalar) and the detached
            ``teacher_entropy`` and ``teacher_marginal_entropy`` (nats, see
            :meth:`DistillLoss.forward`). Their names hold no ``'loss'``:
            MMEngine logs them without adding them to the loss.
        """
        loss, stats = self.loss_module(student, teacher)
        return dict(loss_distill=loss, **stats)
