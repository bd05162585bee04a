"""DINO's linear-probe features on MMPretrain's VisionTransformer.

DINO (``eval_linear.py``) and iBOT evaluate a frozen ViT with a linear
classifier on the [CLS] tokens of the last ``n`` blocks, each passed through
the final LayerNorm, concatenated (``n = 4`` for ViT-S/16), optionally with
the mean of the last block's normalised patch tokens (``n = 1`` + average
pooling for ViT-B/16). MMPretrain's ``VisionTransformer`` returns several
blocks (``out_indices``) but normalises only the last one, so this backbone
applies the final norm ``ln1`` to the others and concatenates the result.
The parameters and their names are those of ``VisionTransformer``: a
converted FOLK / MFM checkpoint loads without missing or unexpected keys.
"""
from typing import Tuple

import torch
from mmpretrain.models.backbones import VisionTransformer
from mmpretrain.registry import MODELS


@MODELS.register_module()
class MultiBlockClsViT(VisionTransformer):
    """ViT whose output is DINO's multi-block [CLS] linear-probe feature.

    Args:
        num_blocks (int): Number of last blocks whose [CLS] tokens are
            concatenated. Defaults to 4 (DINO's ViT-S/16 setting).
        with_avgpool (bool): Also concatenate the mean of the last block's
            normalised patch tokens (DINO's ViT-B/16 setting: ``num_blocks=1``
            and ``with_avgpool=True``). Defaults to False.
        **kwargs: :class:`mmpretrain.models.VisionTransformer` arguments
            except ``out_indices``, ``out_type`` and ``final_norm``, which
            this class sets.

    Output: a 1-tuple with a ``(B, C * (num_blocks + with_avgpool))``
    tensor, ``C`` the embedding width; feed it to a linear head
    (``LinearClsHead(in_channels=C * (num_blocks + with_avgpool))``).
    """

    def __init__(self,
                 num_blocks: int = 4,
                 with_avgpool: bool = False,
                 **kwargs) -> None:
        fixed = {'out_indices', 'out_type', 'final_norm'} & set(kwargs)
        if fixed:
            raise ValueError(f'MultiBlockClsViT sets {sorted(fixed)} itself; '
                             'use num_blocks / with_avgpool')
        if num_blocks < 1:
            raise ValueError(f'num_blocks must be >= 1, got {num_blocks}')
        super().__init__(
            out_indices=list(range(-num_blocks, 0)),
            out_type='raw',
            final_norm=True,
            **kwargs)
        self.num_blocks = num_blocks
        self.with_avgpool = with_avgpool

    @property
    def out_channels(self) -> int:
        """Width of the concatenated feature."""
        return self.embed_dims * (self.num_blocks + int(self.with_avgpool))

    def forward(self, x: torch.Tensor) -> Tuple[torch.Tensor]:
        """(B, 3, H, W) images -> ((B, out_channels), )."""
        # raw tokens (B, 1 + N, C) of the last num_blocks blocks; the parent
        # applied the final norm ln1 to the last one only.
        outs = super().forward(x)
        normed = [self.ln1(tokens) for tokens in outs[:-1]] + [outs[-1]]
        feats = [tokens[:, 0] for tokens in normed]  # [CLS]: (B, C) each
        if self.with_avgpool:
            patches = normed[-1][:, self.num_extra_tokens:]  # (B, N, C)
            feats.append(patches.mean(dim=1))
        return (torch.cat(feats, dim=-1), )  # (B, C * (n + avgpool))
