"""FOLK: frequency-guided masking with self-knowledge distillation."""
from typing import Dict, List, Optional, Union

import torch
import torch.nn as nn
from mmpretrain.registry import MODELS
from mmpretrain.structures import DataSample
from torch.nn.modules.batchnorm import _BatchNorm

from ..teacher_ema import FusedCosineEMA
from .mfm import MFM, split_features


def check_distill_dims(projector: nn.Module, distill_head: nn.Module) -> None:
    """The projector's output size must be the distillation loss's out_dim.

    Otherwise the first iteration fails deep inside the loss with a shape
    error; this names both options at build time.
    """
    last = getattr(projector, 'last_layer', None)
    out_channels = getattr(last, 'out_features', None)
    center = getattr(
        getattr(distill_head, 'loss_module', None), 'center', None)
    if out_channels is None or center is None:
        return
    if center.shape[-1] != out_channels:
        raise ValueError(
            f'FOLK: projector.out_channels ({out_channels}) must equal '
            f'distill_head.loss.out_dim ({center.shape[-1]})')


class GlobalEncoder(nn.Module):
    """Backbone + projector, the part of the student the teacher copies.

    Args:
        backbone (nn.Module): The backbone.
        projector (nn.Module): The distillation projector (``DINOProjector``).
    """

    def __init__(self, backbone: nn.Module, projector: nn.Module) -> None:
        super().__init__()
        self.backbone = backbone
        self.projector = projector

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """(N, 3, H, W) -> (N, K) logits of the global feature."""
        feat = self.backbone(images)[-1]
        cls, _ = split_features(feat, images.shape[-2:])
        return self.projector(cls)


@MODELS.register_module()
class FOLK(MFM):
    """FOLK (Karimi Monsefi et al., ICLR 2025).

    Two views ``u``, ``v`` are filtered (Com / RCom by default) into ``u~``,
    ``v~``; only the filtered views enter the student. The student
    (backbone + MFM decoder ``neck`` + distillation ``projector``)
    reconstructs the removed frequencies of each view (``loss_freq``) and
    predicts the teacher's output for the *other, unfiltered* view
    (``loss_distill``). The teacher is an EMA of backbone + projector and is
    never back-propagated.

    The teacher is updated at the start of every training iteration from
    the student that the previous optimizer step produced (as MMPretrain's
    BYOL does), which is the same sequence of EMA updates as updating right
    after each step. Its momentum follows a cosine schedule from
    ``teacher_momentum`` to ``teacher_momentum_end`` over ``max_iters``.

    The teacher is deterministic whatever the student's ``drop_path_rate``
    or dropout: in training only its BatchNorm layers are in train mode
    (see :meth:`train`). Its BatchNorm statistics come from its own
    forward passes on the unfiltered views, never from the student
    (:class:`FusedCosineEMA` averages parameters only), as in DINO.

    Args:
        backbone (dict): Backbone config.
        neck (dict): MFM decoder config.
        head (dict): MFM head config (frequency loss).
        projector (dict): Distillation projector config (``DINOProjector``).
        distill_head (dict): Distillation head config (``DistillHead``).
        teacher_momentum (float): Initial teacher momentum, DINO's
            convention (weight of the *teacher*). Defaults to 0.996.
        teacher_momentum_end (float): Final teacher momentum. Defaults to 1.
        pretrained, compile_backbone, data_preprocessor, init_cfg: as
            :class:`MFM`.
    """

    compile_in_init = False  # compiled after the teacher copy, see MFM

    def __init__(self,
                 backbone: dict,
                 neck: dict,
                 head: dict,
                 projector: dict,
                 distill_head: dict,
                 teacher_momentum: float = 0.996,
                 teacher_momentum_end: float = 1.0,
                 pretrained: Optional[str] = None,
                 compile_backbone: Union[bool, dict] = False,
                 data_preprocessor: Optional[dict] = None,
                 init_cfg: Optional[Union[List[dict], dict]] = None) -> None:
        if not 0 < teacher_momentum < 1:
            raise ValueError('FOLK: teacher_momentum must be in (0, 1), got '
                             f'{teacher_momentum}')
        if not 0 <= teacher_momentum_end <= 1:
            raise ValueError('FOLK: teacher_momentum_end must be in [0, 1], '
                             'got '
                             f'{teacher_momentum_end}')
        super().__init__(
            backbone=backbone,
            neck=neck,
            head=head,
            pretrained=pretrained,
            compile_backbone=compile_backbone,
            data_preprocessor=data_preprocessor,
            init_cfg=init_cfg)
        self.projector = MODELS.build(projector)
        self.distill_head = MODELS.build(distill_head)
        check_distill_dims(self.projector, self.distill_head)
        # CosineEMA's momentum is the weight of the student (see its docs).
        self.teacher = FusedCosineEMA(
            self.student_encoder(),
            momentum=1.0 - teacher_momentum,
            end_momentum=1.0 - teacher_momentum_end)
        self.train()  # the teacher's modes (see ``train``)
        self.compile_backbones()  # student and teacher backbones

    def train(self, mode: bool = True) -> 'FOLK':
        """Set the training mode; the teacher runs without stochastic layers.

        With ``mode=True`` the student (and the rest of the model) is in
        train mode, while the teacher is in eval mode except its BatchNorm
        layers: no drop path, dropout or attention dropout in the teacher
        (two teacher forwards of one batch are equal), and a CNN teacher
        normalises with the statistics of its own (unfiltered) batch and
        keeps running statistics of them, as DINO's teacher does.
        """
        super().train(mode)
        self.teacher.eval()
        if mode:
            for m in self.teacher.modules():
                if isinstance(m, _BatchNorm):  # includes SyncBatchNorm
                    m.train()
        return self

    def student_encoder(self) -> GlobalEncoder:
        """A view of the student's backbone + projector (shared modules)."""
        return GlobalEncoder(self.backbone, self.projector)

    def init_weights(self) -> None:
        """Initialise the student, then copy it into the teacher."""
        super().init_weights()
        self.teacher.module.load_state_dict(
            self.student_encoder().state_dict())

    def loss(self, inputs: Dict[str, List[torch.Tensor]],
             data_samples: List[DataSample],
             **kwargs) -> Dict[str, torch.Tensor]:
        """Frequency reconstruction + cross-view self-distillation.

        Args:
            inputs (dict): ``views`` (unfiltered), ``filtered`` and ``keep``
                lists from :class:`FrequencyFilterPreprocessor`, one entry
                per view, each (B, 3, H, W) / (B, H, W).
            data_samples (list[DataSample]): Unused.

        Returns:
            dict[str, Tensor]: ``loss_freq``, ``loss_distill`` and the
            detached ``teacher_entropy`` / ``teacher_marginal_entropy``
            (:class:`DistillHead`).
        """
        num_views = len(inputs['views'])
        # Teacher: unfiltered views only, no gradient. It runs first, so
        # its transient activations are freed before the student's are
        # stored (ViT-B/16, 2 x 128 x 224 px: 0.6 GiB less at the peak,
        # benchmarks/pretrain_cost.py).
        with torch.no_grad():
            self.teacher.update_parameters(self.student_encoder())
            teacher = self.teacher(torch.cat(inputs['views']))
            teacher = teacher.chunk(num_views)  # V x (B, K)
        # Student: filtered views only.
        cls, fmap = self.encode(torch.cat(inputs['filtered']))  # (V*B, C)
        loss_freq = self.reconstruction_loss(fmap, inputs)
        student = self.projector(cls).chunk(num_views)  # V x (B, K)
        # loss_distill and the teacher's entropy (logged, not summed)
        losses = dict(loss_freq=loss_freq)
        losses.update(self.distill_head.loss(student, teacher))
        return losses
