"""Layer-wise learning-rate decay for MMSeg segmentors with a ViT backbone."""
from typing import List

import torch.nn as nn
from mmengine.optim import DefaultOptimWrapperConstructor
from mmseg.registry import OPTIM_WRAPPER_CONSTRUCTORS

_NO_DECAY_NAMES = ('pos_embed', 'cls_token', 'mask_token')


@OPTIM_WRAPPER_CONSTRUCTORS.register_module()
class ViTLayerDecayOptimizerConstructor(DefaultOptimWrapperConstructor):
    """Layer-wise lr decay for a segmentor with a ViT backbone.

    MMSeg's ``LearningRateDecayOptimizerConstructor`` accepts only backbones
    whose class name contains ``BEiT`` / ``MAE`` / ``ConvNeXt`` (and gives
    ``pos_embed`` / ``cls_token`` weight decay). This one uses the same
    layer ids as MMSeg for BEiT / MAE (embeddings: 0, ``backbone.layers.i``:
    i + 1, everything else incl. the decode head: ``num_layers + 1``), lr
    scale ``layer_decay_rate ** (num_layers + 1 - id)``, and no weight decay
    for biases, norms (1-D params), ``pos_embed`` and ``cls_token``.

    ``paramwise_cfg``: ``num_layers`` (int), ``layer_decay_rate`` (float;
    ``decay_rate`` is accepted as in MMSeg).
    """

    def add_params(self, params: List[dict], module: nn.Module,
                   **kwargs) -> None:
        """Add one parameter group per (layer id, decay / no decay).

        Args:
            params (list[dict]): Parameter groups, extended in place.
            module (nn.Module): The segmentor.
        """
        num_layers = self.paramwise_cfg['num_layers'] + 2
        rate = self.paramwise_cfg.get('layer_decay_rate',
                                      self.paramwise_cfg.get('decay_rate', 1.))
        groups = {}
        for name, param in module.named_parameters():
            if not param.requires_grad:
                continue
            last = name.split('.')[-1]
            if param.ndim == 1 or name.endswith('.bias') or \
                    last in _NO_DECAY_NAMES:
                decay, wd = 'no_decay', 0.
            else:
                decay, wd = 'decay', self.base_wd
            if last in _NO_DECAY_NAMES and name.startswith('backbone.'):
                layer_id = 0
            elif name.startswith('backbone.patch_embed'):
                layer_id = 0
            elif name.startswith('backbone.layers.'):
                layer_id = int(name.split('.')[2]) + 1
            else:
                layer_id = num_layers - 1
            key = f'layer_{layer_id}_{decay}'
            if key not in groups:
                scale = rate**(num_layers - layer_id - 1)
                groups[key] = dict(
                    params=[],
                    weight_decay=wd,
                    lr_scale=scale,
                    lr=scale * self.base_lr,
                    group_name=key)
            groups[key]['params'].append(param)
        params.extend(groups.values())


__all__ = ['ViTLayerDecayOptimizerConstructor']
