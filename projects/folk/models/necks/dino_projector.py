"""DINO's projection MLP with weight-normalised prototypes."""
from typing import Optional

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmengine.model import BaseModule
from mmengine.model.weight_init import trunc_normal_
from mmpretrain.registry import MODELS

from ..schedule import current_iter, phase_iters


@MODELS.register_module()
class DINOProjector(BaseModule):
    """MLP -> L2-normalised bottleneck -> weight-normalised prototypes.

    MMPretrain has no DINO head in its core (its ``projects/dino`` is not
    installed with the package), so this small module is ours.

    The prototype layer runs in float32 even inside an autocast region: its
    logits are divided by the teacher temperature (0.04) before the
    softmax, so bf16's rounding of logits of size ~1 (up to 2**-8
    relative) would move them by up to ~0.05 after the division. The MLP
    follows autocast.

    With ``freeze_last_layer`` > 0 the prototypes do not learn during the
    first epochs (DINO's ``freeze_last_layer``, one epoch in its recipes,
    where it "helps training"; FOLK's paper does not say, so it is off by
    default). DINO drops their gradients after the backward pass; here the
    prototype weights enter the forward pass with a zero gradient instead
    (``w.detach() + 0 * w``), so every parameter still takes part in the
    backward pass, as DDP without ``find_unused_parameters`` requires. AdamW
    then leaves them unchanged: zero gradients keep its moments at zero, and
    its decay only rescales the direction ``v`` of the weight-normalised
    prototypes, which the normalisation removes (with ``norm_last_layer``;
    a learnt norm would decay). The position is read from the runner's
    message hub (:mod:`folk.models.schedule`); outside a runner nothing is
    frozen.

    Args:
        in_channels (int): Input feature dimension (the [CLS] token or the
            pooled CNN feature).
        hidden_channels (int): Hidden width. Defaults to 2048.
        bottleneck_channels (int): Bottleneck width. Defaults to 256.
        out_channels (int): Number of prototypes. Defaults to 65536.
        num_layers (int): Number of MLP layers (>= 1). Defaults to 3.
        norm_last_layer (bool): Freeze the prototypes' norm at 1.
            Defaults to True.
        freeze_last_layer (float): Epochs (iterations with an
            iteration-based loop) at the start of training during which the
            prototypes get no update. Defaults to 0.
        freeze_last_layer_iters (int, optional): The same in iterations;
            overrides ``freeze_last_layer``.
    """

    def __init__(self,
                 in_channels: int,
                 hidden_channels: int = 2048,
                 bottleneck_channels: int = 256,
                 out_channels: int = 65536,
                 num_layers: int = 3,
                 norm_last_layer: bool = True,
                 freeze_last_layer: float = 0.,
                 freeze_last_layer_iters: Optional[int] = None,
                 init_cfg=None) -> None:
        super().__init__(init_cfg)
        if num_layers < 1:
            raise ValueError(f'num_layers must be >= 1, got {num_layers}')
        if freeze_last_layer < 0 or (freeze_last_layer_iters or 0) < 0:
            raise ValueError(
                'DINOProjector: freeze_last_layer and freeze_last_layer_iters'
                f' must be >= 0, got {freeze_last_layer} and '
                f'{freeze_last_layer_iters}')
        self.freeze_last_layer = freeze_last_layer
        self.freeze_last_layer_iters = freeze_last_layer_iters
        layers = []
        dims = [in_channels] + [hidden_channels] * (num_layers - 1)
        for d_in, d_out in zip(dims[:-1], dims[1:]):
            layers += [nn.Linear(d_in, d_out), nn.GELU()]
        layers.append(nn.Linear(dims[-1], bottleneck_channels))
        self.mlp = nn.Sequential(*layers)
        self.last_layer = nn.utils.parametrizations.weight_norm(
            nn.Linear(bottleneck_channels, out_channels, bias=False))
        self.last_layer.parametrizations.weight.original0.data.fill_(1.0)
        if norm_last_layer:
            self.last_layer.parametrizations.weight.original0.requires_grad_(
                False)

    def init_weights(self) -> None:
        """Truncated-normal init of the MLP, as in DINO."""
        super().init_weights()
        for m in self.mlp.modules():
            if isinstance(m, nn.Linear):
                trunc_normal_(m.weight, std=0.02)
                nn.init.constant_(m.bias, 0)

    def prototypes_frozen(self) -> bool:
        """Whether the prototypes are frozen at the current iteration."""
        if not (self.freeze_last_layer or self.freeze_last_layer_iters):
            return False
        cur = current_iter()
        return cur is not None and cur < phase_iters(
            self.freeze_last_layer, self.freeze_last_layer_iters)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, in_channels) -> (B, out_channels) logits."""
        x = self.mlp(x)  # (B, bottleneck)
        with torch.autocast(x.device.type, enabled=False):
            x = F.normalize(x.float(), dim=-1, p=2)
            if self.training and torch.is_grad_enabled() \
                    and self.prototypes_frozen():
                weight = self.last_layer.weight  # (out_channels, bottleneck)
                # zero gradient, but in the graph (see the class docstring)
                return F.linear(x, weight.detach() + 0 * weight)
            return self.last_layer(x)  # (B, out_channels) float32
