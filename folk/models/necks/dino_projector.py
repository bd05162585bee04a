"""DINO's projection MLP with weight-normalised prototypes."""
import torch
import torch.nn as nn
import torch.nn.functional as F
from mmengine.model import BaseModule
from mmengine.model.weight_init import trunc_normal_
from mmpretrain.registry import MODELS


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

    Args:
        in_channels (int): Input feature dimension (the [CLS] token or the
            pooled CNN feature).
        hidden_channels (int): Hidden width. Defaults to 2048.
        bottleneck_channels (int): Bottleneck width. Defaults to 256.
        out_channels (int): Number of prototypes. Defaults to 65536.
        num_layers (int): Number of MLP layers (>= 1). Defaults to 3.
        norm_last_layer (bool): Freeze the prototypes' norm at 1.
            Defaults to True.
    """

    def __init__(self,
                 in_channels: int,
                 hidden_channels: int = 2048,
                 bottleneck_channels: int = 256,
                 out_channels: int = 65536,
                 num_layers: int = 3,
                 norm_last_layer: bool = True,
                 init_cfg=None) -> None:
        super().__init__(init_cfg)
        if num_layers < 1:
            raise ValueError(f'num_layers must be >= 1, got {num_layers}')
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

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, in_channels) -> (B, out_channels) logits."""
        x = self.mlp(x)  # (B, bottleneck)
        with torch.autocast(x.device.type, enabled=False):
            x = F.normalize(x.float(), dim=-1, p=2)
            return self.last_layer(x)  # (B, out_channels) float32
