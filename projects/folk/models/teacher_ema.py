"""Cosine-momentum EMA teacher with a fused, synchronisation-free update."""
from math import cos, pi
from typing import Optional

import torch
import torch.nn as nn
from mmengine.logging import MessageHub
from mmpretrain.models.utils import CosineEMA
from mmpretrain.registry import MODELS

_WRAPPER_PREFIXES = ('_fsdp_wrapped_module.', '_checkpoint_wrapped_module.')


def _clean_name(name: str) -> str:
    for prefix in _WRAPPER_PREFIXES:
        name = name.replace(prefix, '')
    return name


@MODELS.register_module()
class FusedCosineEMA(CosineEMA):
    """:class:`mmpretrain.models.CosineEMA` with the same arithmetic, faster.

    MMPretrain's implementation calls ``avg_func`` once per parameter; each
    call reads ``max_iters`` from the message hub and turns the on-device
    ``steps`` buffer into a Python number, i.e. one host-device
    synchronisation per parameter (about 200 per step for ViT-B on a GPU).
    Here the momentum is computed once per step from a host-side copy of
    ``steps`` and all parameters are updated by one ``torch._foreach_lerp_``
    (``avg += m * (src - avg)``, identical to ``avg * (1 - m) + src * m``
    up to rounding). ``steps`` stays a buffer, so checkpoints and resume are
    unchanged; the host copy is refreshed whenever a state dict is loaded.

    One deliberate difference: with ``update_buffers=False`` MMEngine's
    averaged models copy the source model's buffers into the average at
    every update. For FOLK's teacher that would overwrite the teacher's
    BatchNorm statistics (a ResNet teacher sees the *unfiltered* views) with
    the student's (statistics of the *filtered* views). As in DINO, whose
    EMA touches parameters only, the buffers of the average are left alone
    here unless ``copy_buffers=True``.

    Args:
        copy_buffers (bool): Copy the model's buffers into the average at
            every update, as :class:`mmpretrain.models.CosineEMA` does.
            Ignored with ``update_buffers=True`` (buffers are averaged).
            Defaults to False.
        *args, **kwargs: as :class:`mmpretrain.models.CosineEMA`.
    """

    def __init__(self, *args, copy_buffers: bool = False, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.copy_buffers = copy_buffers
        # ``steps`` mirrored on the host: read while it is still there (here,
        # and from the state dict being loaded), not from the device
        self._host_steps: Optional[int] = int(self.steps)

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        steps = state_dict.get(prefix + 'steps')
        self._host_steps = int(steps) if torch.is_tensor(steps) else None
        return super()._load_from_state_dict(state_dict, prefix, *args,
                                             **kwargs)

    def current_momentum(self, steps: int) -> float:
        """Weight of the student at update number ``steps``."""
        max_iters = MessageHub.get_current_instance().get_info('max_iters')
        if max_iters is None:
            raise RuntimeError(
                'FusedCosineEMA needs "max_iters" in the message hub (set by '
                "the Runner; outside a Runner call MessageHub.get_current_"
                "instance().update_info('max_iters', N))")
        annealing = (cos(pi * steps / float(max_iters)) + 1) / 2
        return self.end_momentum - (self.end_momentum -
                                    self.momentum) * annealing

    @torch.no_grad()
    def update_parameters(self, model: nn.Module) -> None:
        """Move the averaged parameters towards ``model``'s."""
        if self._host_steps is None:
            self._host_steps = int(self.steps)  # steps set by other means
        steps = self._host_steps
        src = (
            model.state_dict()
            if self.update_buffers else dict(model.named_parameters()))
        # under FSDP (folk.engine.fsdp) the names carry the wrappers'
        # prefixes; the tensors are the local shards of both models
        src = {_clean_name(k): v for k, v in src.items()}
        names = [
            k for k, p in self.avg_parameters.items()
            if p.dtype.is_floating_point
        ]
        avg = [self.avg_parameters[k].data for k in names]
        new = [src[k].data.to(a.device) for k, a in zip(names, avg)]
        if steps == 0:
            torch._foreach_copy_(avg, new)
        elif steps % self.interval == 0:
            torch._foreach_lerp_(avg, new, self.current_momentum(steps))
        if self.copy_buffers and not self.update_buffers:
            dst = [b.data for b in self.module.buffers()]
            if dst:
                torch._foreach_copy_(dst, [
                    b.data.to(d.device) for b, d in zip(model.buffers(), dst)
                ])
        self.steps.add_(1)
        self._host_steps = steps + 1
