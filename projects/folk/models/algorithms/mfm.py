"""MFM: masked frequency modelling, the baseline that FOLK extends."""
import math
from typing import Dict, List, Optional, Tuple, Union

import torch
import torch.nn as nn
from mmpretrain.models.selfsup.base import BaseSelfSupervisor
from mmpretrain.registry import MODELS
from mmpretrain.structures import DataSample


def split_features(
        feat: torch.Tensor,
        image_hw: Tuple[int, int]) -> Tuple[torch.Tensor, torch.Tensor]:
    """Global vector and spatial map of a backbone output.

    Args:
        feat (Tensor): ViT tokens (B, 1 + N, C) with the [CLS] token first
            (``out_type='raw'``), or a CNN feature map (B, C, h, w).
        image_hw (tuple[int, int]): Input image size, for the token grid.

    Returns:
        tuple[Tensor, Tensor]: (B, C) global feature ([CLS] token or average
        pooled map) and (B, C, h, w) feature map.
    """
    if feat.dim() == 4:
        return feat.mean(dim=(2, 3)), feat
    if feat.dim() != 3:
        raise ValueError(f'unexpected backbone output shape {feat.shape}')
    b, n, c = feat.shape
    n -= 1  # the [CLS] token
    h = int(round(math.sqrt(n * image_hw[0] / image_hw[1])))
    w = n // max(h, 1)
    if h * w != n:
        raise ValueError(f'cannot arrange {n} patch tokens in a grid for an '
                         f'input of size {image_hw}')
    fmap = feat[:, 1:].transpose(1, 2).reshape(b, c, h, w)
    return feat[:, 0], fmap


def check_backbone(backbone: nn.Module) -> None:
    """ViT backbones must return all tokens including [CLS]."""
    out_type = getattr(backbone, 'out_type', None)
    if out_type is not None and out_type != 'raw':
        raise ValueError('the ViT backbone must use out_type="raw" (all '
                         f'tokens with [CLS]), got out_type={out_type!r}')
    if out_type == 'raw' and not getattr(backbone, 'with_cls_token', True):
        raise ValueError('the ViT backbone needs with_cls_token=True')


@MODELS.register_module()
class MFM(BaseSelfSupervisor):
    """Masked Frequency Modelling (Xie et al., ICLR 2023).

    The backbone sees a frequency-filtered image and a linear decoder
    (``neck``, MMPretrain's :class:`SimMIMLinearDecoder`) reconstructs the
    image; the loss (``head``, :class:`MFMHead`) is the spectral distance on
    the filtered-out frequencies. The filter is chosen in the pipeline
    (:class:`RandomFrequencyFilter`, low/high-pass for MFM) and applied by
    :class:`FrequencyFilterPreprocessor`, the default data preprocessor.

    Args:
        backbone (dict): Backbone config (ViT with ``out_type='raw'`` or a
            CNN such as ResNet).
        neck (dict): Decoder config.
        head (dict): Reconstruction head config.
        pretrained (str, optional): Checkpoint to initialise from.
        compile_backbone (bool | dict): Compile the backbone(s) in place
            with :meth:`torch.nn.Module.compile` (a dict is passed to it as
            keyword arguments); state-dict keys are unchanged. MMEngine's
            ``compile=True`` (the whole ``train_step``) fails with torch
            2.14 inside the optimizer step, see docs/benchmarks.md. Under
            DDP the backbones are compiled inside the wrapped model, so
            dynamo does not split their graphs at DDP's gradient buckets:
            the backbone's gradients reach the all-reduce at the end of its
            backward instead of overlapping it (an estimated few ms per
            ViT-B step on one node, not measured on a GPU here). Defaults to
            False.
        data_preprocessor (dict, optional): Defaults to
            ``FrequencyFilterPreprocessor``.
        init_cfg (dict | list[dict], optional): Initialisation config.
    """

    #: Whether ``__init__`` applies ``compile_backbone``. A subclass that
    #: copies the backbone after ``__init__`` (FOLK's EMA teacher) sets it
    #: to False and calls :meth:`compile_backbones` once every copy exists:
    #: a compiled module must not be deep-copied.
    compile_in_init = True

    def __init__(self,
                 backbone: dict,
                 neck: dict,
                 head: dict,
                 pretrained: Optional[str] = None,
                 compile_backbone: Union[bool, dict] = False,
                 data_preprocessor: Optional[dict] = None,
                 init_cfg: Optional[Union[List[dict], dict]] = None) -> None:
        data_preprocessor = dict(data_preprocessor or {})
        data_preprocessor.setdefault('type', 'FrequencyFilterPreprocessor')
        super().__init__(
            backbone=backbone,
            neck=neck,
            head=head,
            pretrained=pretrained,
            data_preprocessor=data_preprocessor,
            init_cfg=init_cfg)
        check_backbone(self.backbone)
        self.compile_backbone = compile_backbone
        if self.compile_in_init:
            self.compile_backbones()

    def compile_backbones(self) -> None:
        """Apply ``compile_backbone`` (after every copy of the backbone)."""
        if not self.compile_backbone:
            return
        kwargs = (
            dict(self.compile_backbone)
            if isinstance(self.compile_backbone, dict) else {})
        self.backbone.compile(**kwargs)
        teacher = getattr(self, 'teacher', None)
        if teacher is not None:
            teacher.module.backbone.compile(**kwargs)

    def encode(self,
               images: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """Backbone features of a batch.

        Args:
            images (Tensor): (N, 3, H, W) normalised images.

        Returns:
            tuple[Tensor, Tensor]: global feature (N, C) and map
            (N, C, h, w).
        """
        feat = self.backbone(images)[-1]
        return split_features(feat, images.shape[-2:])

    def reconstruction_loss(self, fmap: torch.Tensor,
                            inputs: Dict) -> torch.Tensor:
        """Decode ``fmap`` and compare with the unfiltered views."""
        pred = self.neck(fmap)  # (V*B, 3, H, W)
        target = torch.cat(inputs['views'])  # (V*B, 3, H, W)
        keep = torch.cat(inputs['keep'])  # (V*B, H, W)
        return self.head.loss(pred, target, keep)

    def loss(self, inputs: Dict[str, List[torch.Tensor]],
             data_samples: List[DataSample],
             **kwargs) -> Dict[str, torch.Tensor]:
        """Frequency reconstruction of every filtered view.

        Args:
            inputs (dict): ``views``, ``filtered`` and ``keep`` lists from
                :class:`FrequencyFilterPreprocessor`.
            data_samples (list[DataSample]): Unused.

        Returns:
            dict[str, Tensor]: ``loss_freq``.
        """
        _, fmap = self.encode(torch.cat(inputs['filtered']))
        return dict(loss_freq=self.reconstruction_loss(fmap, inputs))
