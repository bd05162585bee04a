"""DINO-style self-distillation loss with a centred, sharpened teacher."""
from typing import Dict, List, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from mmengine.dist import all_reduce, get_world_size
from mmengine.model import BaseModule
from mmpretrain.registry import MODELS

from ..schedule import current_iter, phase_iters


@MODELS.register_module()
class DistillLoss(BaseModule):
    """Cross-entropy between a sharpened, centred teacher and the student.

    ``loss = -sum softmax((t - center) / T_t) * log_softmax(s / T_s)``,
    averaged over the batch and over the cross-view pairs (each student view
    against the teacher's output for every other view, as in DINO; one call
    of :meth:`forward` with all views). The centre is an exponential moving
    average of the teacher's batch mean, all-reduced over processes, updated by
    :meth:`update_center` and saved as a buffer (restored on resume).

    The teacher temperature rises linearly from ``warmup_teacher_temp`` to
    ``teacher_temp`` over ``warmup_epochs`` epochs. The current position is
    read from the runner's :class:`~mmengine.logging.MessageHub` (``iter``,
    ``max_iters``, ``max_epochs``), so the schedule is a pure function of the
    iteration: exact on resume and independent of any model wrapper.
    Outside a runner (no ``max_iters``) the final ``teacher_temp`` is used.

    The centre starts at the first batch's (all-reduced) teacher mean with
    ``center_init='first_batch'`` (default, ours) or at zero as in DINO with
    ``center_init='zeros'``. Starting from zero leaves the teacher un-centred
    for the first ~1 / (1 - center_momentum) iterations, so the loss first
    rises while the centre catches up; starting from the first batch removes
    that transient and makes the loss curve reflect learning from step one.

    Args:
        out_dim (int): Number of prototypes (the logits' dimension).
        student_temp (float): Student temperature. Defaults to 0.1.
        teacher_temp (float): Teacher temperature after warm-up.
            Defaults to 0.07.
        warmup_teacher_temp (float): Initial teacher temperature.
            Defaults to 0.04.
        warmup_epochs (float): Warm-up length in epochs (with an iteration
            based loop: ``warmup_iters``). Defaults to 30.
        warmup_iters (int, optional): Warm-up length in iterations; overrides
            ``warmup_epochs``.
        center_momentum (float): Momentum of the centre. Defaults to 0.9.
        center_init (str): ``'first_batch'`` or ``'zeros'``.
            Defaults to ``'first_batch'``.
        loss_weight (float): Weight of the loss. Defaults to 1.0.
    """

    def __init__(self,
                 out_dim: int,
                 student_temp: float = 0.1,
                 teacher_temp: float = 0.07,
                 warmup_teacher_temp: float = 0.04,
                 warmup_epochs: float = 30,
                 warmup_iters: Optional[int] = None,
                 center_momentum: float = 0.9,
                 center_init: str = 'first_batch',
                 loss_weight: float = 1.0) -> None:
        super().__init__()
        for name, value in dict(
                student_temp=student_temp,
                teacher_temp=teacher_temp,
                warmup_teacher_temp=warmup_teacher_temp).items():
            if value <= 0:
                raise ValueError(
                    f'DistillLoss: {name} must be > 0, got {value}')
        if not 0 <= center_momentum < 1:
            raise ValueError(
                f'DistillLoss: center_momentum must be in [0, 1), got '
                f'{center_momentum}')
        if loss_weight < 0:
            raise ValueError(
                f'DistillLoss: loss_weight must be >= 0, got {loss_weight}')
        if center_init not in ('first_batch', 'zeros'):
            raise ValueError('DistillLoss: center_init must be "first_batch" '
                             'or "zeros", '
                             f'got {center_init!r}')
        self.center_init = center_init
        self.student_temp = student_temp
        self.teacher_temp = teacher_temp
        self.warmup_teacher_temp = warmup_teacher_temp
        self.warmup_epochs = warmup_epochs
        self.warmup_iters = warmup_iters
        self.center_momentum = center_momentum
        self.loss_weight = loss_weight
        self.register_buffer('center', torch.zeros(1, out_dim))
        # whether ``center`` holds a running mean yet (saved for resume)
        self.register_buffer('center_ready', torch.tensor(False))

    def current_teacher_temp(self) -> float:
        """Teacher temperature at the runner's current iteration."""
        cur = current_iter()
        if cur is None:
            return self.teacher_temp
        warmup = phase_iters(self.warmup_epochs, self.warmup_iters)
        if warmup <= 0 or cur >= warmup:
            return self.teacher_temp
        frac = cur / warmup
        return self.warmup_teacher_temp + frac * (
            self.teacher_temp - self.warmup_teacher_temp)

    def teacher_probs(self, teacher_logits: torch.Tensor) -> torch.Tensor:
        """Centred, sharpened teacher distribution (B, K), no gradient."""
        temp = self.current_teacher_temp()
        return F.softmax(
            (teacher_logits.float() - self.center) / temp, dim=-1).detach()

    def cross_entropy(self, student_logits: torch.Tensor,
                      teacher_probs: torch.Tensor) -> torch.Tensor:
        """Cross-entropy of the student against teacher probabilities.

        Args:
            student_logits (Tensor): (B, K).
            teacher_probs (Tensor): (B, K) from :meth:`teacher_probs`.

        Returns:
            Tensor: scalar, the batch mean (unweighted).
        """
        log_p = F.log_softmax(
            student_logits.float() / self.student_temp, dim=-1)
        return -(teacher_probs * log_p).sum(dim=-1).mean()

    @staticmethod
    def pairs(num_views: int) -> List[Tuple[int, int]]:
        """Index pairs (student view, teacher view): every cross pair."""
        return [(s, t) for s in range(num_views) for t in range(num_views)
                if s != t]

    def forward(
        self, student: Sequence[torch.Tensor], teacher: Sequence[torch.Tensor]
    ) -> Tuple[torch.Tensor, Dict[str, torch.Tensor]]:
        """Cross-view distillation loss, in one call.

        Each student view learns the teacher's output for every *other*
        view (:meth:`pairs`); the terms are averaged. In training mode the
        centre is started (first batch) before and updated after the loss
        with all teacher outputs.

        Args:
            student (list[Tensor]): Student logits, one (B, K) per view.
            teacher (list[Tensor]): Teacher logits, one (B, K) per view, in
                the same view order.

        Returns:
            tuple[Tensor, dict[str, Tensor]]: The weighted scalar loss and
            detached statistics of the teacher distribution ``p`` over all
            of this process's teacher outputs (in nats, at most ``ln K``):

            - ``teacher_entropy``: mean per-sample entropy ``H(p)``; near
              ``ln K`` when the teacher collapsed to a uniform output.
            - ``teacher_marginal_entropy``: entropy of the batch-mean
              distribution ``H(mean p)``; ``exp`` of it is the effective
              number of prototypes in use, small when the teacher collapsed
              onto a few prototypes.
        """
        if len(student) != len(teacher) or len(student) < 2:
            raise ValueError('DistillLoss: need the same number (>= 2) of '
                             'student and teacher views, got '
                             f'{len(student)} and {len(teacher)}')
        all_teacher = torch.cat(teacher)  # (V*B, K)
        if self.training:
            batch_center = self.batch_center(all_teacher)  # (1, K)
            self.start_center(batch_center)
        probs = self.teacher_probs(all_teacher)  # (V*B, K)
        view_probs = probs.split([t.shape[0] for t in teacher])
        pairs = self.pairs(len(student))
        loss = sum(
            self.cross_entropy(student[s], view_probs[t])
            for s, t in pairs) / len(pairs)
        if self.training:
            self.update_center(batch_center=batch_center)
        stats = self.entropy_stats(probs)
        return self.loss_weight * loss, stats

    @staticmethod
    @torch.no_grad()
    def entropy_stats(probs: torch.Tensor) -> Dict[str, torch.Tensor]:
        """Per-sample and marginal entropy of (N, K) probabilities (nats).

        See :meth:`forward`. No host synchronisation: the values stay on
        the device until they are logged.
        """
        sample = torch.special.entr(probs).sum(dim=-1).mean()
        marginal = torch.special.entr(probs.mean(dim=0)).sum()
        return dict(teacher_entropy=sample, teacher_marginal_entropy=marginal)

    @torch.no_grad()
    def batch_center(self, teacher_logits: torch.Tensor) -> torch.Tensor:
        """Mean teacher output over the global batch (all processes).

        Args:
            teacher_logits (Tensor): (N, K) teacher outputs of this process.

        Returns:
            Tensor: (1, K) mean over every process's rows.
        """
        total = teacher_logits.float().sum(dim=0, keepdim=True)  # (1, K)
        count = torch.full((1, 1),
                           float(teacher_logits.shape[0]),
                           device=total.device)
        if get_world_size() > 1:
            all_reduce(total, op='sum')
            all_reduce(count, op='sum')
        return total / count

    @torch.no_grad()
    def start_center(self, batch_center: torch.Tensor) -> None:
        """Set the centre to ``batch_center`` if it holds no mean yet."""
        if self.center_init == 'first_batch':
            # torch.where: no host-device synchronisation on the flag
            self.center.copy_(
                torch.where(self.center_ready, self.center, batch_center))

    @torch.no_grad()
    def update_center(self,
                      teacher_logits: Optional[torch.Tensor] = None,
                      batch_center: Optional[torch.Tensor] = None) -> None:
        """EMA update of the centre with the all-reduced batch mean.

        Args:
            teacher_logits (Tensor, optional): (N, K) teacher outputs of this
                process.
            batch_center (Tensor, optional): :meth:`batch_center` of them,
                if already computed.
        """
        if batch_center is None:
            batch_center = self.batch_center(teacher_logits)
        self.start_center(batch_center)
        self.center.mul_(self.center_momentum).add_(
            batch_center, alpha=1 - self.center_momentum)
        self.center_ready.fill_(True)
