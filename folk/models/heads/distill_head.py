"""Cross-view self-distillation head of FOLK."""
from typing import Sequence

import torch
from mmengine.model import BaseModule

from mmpretrain.registry import MODELS


@MODELS.register_module()
class DistillHead(BaseModule):
    """Pairs each filtered student view with the *other* unfiltered view.

    With views ``u``, ``v``: ``student(u~)`` learns ``teacher(v)`` and
    ``student(v~)`` learns ``teacher(u)``; the two terms are averaged. The
    teacher centre is updated after the loss with all teacher outputs (and,
    on the first iteration, initialised from them; see :class:`DistillLoss`).

    Args:
        loss (dict): Config of the loss, e.g. ``dict(type='DistillLoss')``.
    """

    def __init__(self, loss: dict) -> None:
        super().__init__()
        self.loss_module = MODELS.build(loss)

    @staticmethod
    def pairs(num_views: int):
        """Index pairs (student view, teacher view): every cross pair."""
        return [(s, t) for s in range(num_views) for t in range(num_views)
                if s != t]

    def loss(self, student: Sequence[torch.Tensor],
             teacher: Sequence[torch.Tensor]) -> torch.Tensor:
        """Compute the distillation loss.

        Args:
            student (list[Tensor]): Student logits of the filtered views,
                each (B, K).
            teacher (list[Tensor]): Teacher logits of the unfiltered views,
                each (B, K), in the same view order.

        Returns:
            Tensor: scalar loss.
        """
        if len(student) != len(teacher) or len(student) < 2:
            raise ValueError('need the same number (>= 2) of student and '
                             f'teacher views, got {len(student)} and '
                             f'{len(teacher)}')
        if self.training:
            batch_center = self.loss_module.batch_center(torch.cat(teacher))
            self.loss_module.start_center(batch_center)
        probs = [self.loss_module.teacher_probs(t) for t in teacher]
        pairs = self.pairs(len(student))
        total = sum(self.loss_module(student[s], probs[t]) for s, t in pairs)
        if self.training:
            self.loss_module.update_center(batch_center=batch_center)
        return total / len(pairs)
