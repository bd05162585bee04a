"""Fully sharded training of FOLK with MMEngine's ``FSDPStrategy``.

FOLK's EMA teacher is a copy of the student's backbone and projector, and
it is updated element by element from the student (``avg += m * (src -
avg)``). Under FSDP each process holds only a shard of every parameter, so
the update is right only when a student tensor and its teacher tensor are
sharded the same way. :func:`folk_fsdp_wrap_policy` makes every transformer
layer, every backbone and every projector its own FSDP unit: the student's
and the teacher's units then have the same parameters in the same order,
hence the same flat layout and the same shards, and the update of the local
shards is the update of the whole tensors (``FusedCosineEMA`` matches the
tensors by name, without FSDP's ``_fsdp_wrapped_module.`` prefixes).

Use it with ``use_orig_params=True`` (MMEngine's default), which keeps the
original parameter objects the teacher holds::

    runner_type = 'FlexibleRunner'
    strategy = dict(
        type='FSDPStrategy',
        state_dict_cfg='full',
        model_wrapper=dict(
            auto_wrap_policy=dict(type='folk_fsdp_wrap_policy')))
"""
from typing import Sequence

from mmengine.registry import FUNCTIONS
from torch import nn

#: module classes (by name) that become FSDP units
FSDP_UNITS = ('TransformerEncoderLayer', 'VisionTransformer', 'ResNet',
              'DINOProjector')


@FUNCTIONS.register_module()
def folk_fsdp_wrap_policy(module: nn.Module,
                          recurse: bool,
                          nonwrapped_numel: int,
                          units: Sequence[str] = FSDP_UNITS) -> bool:
    """FSDP ``auto_wrap_policy``: one unit per module of a class in ``units``.

    Args:
        module (nn.Module): The module FSDP asks about.
        recurse (bool): True when FSDP asks whether to look into children.
        nonwrapped_numel (int): Parameters not yet wrapped (unused).
        units (Sequence[str]): Class names that become units.
            Defaults to :data:`FSDP_UNITS`.

    Returns:
        bool: Look into the children (``recurse``) / wrap ``module``.
    """
    if recurse:
        return True
    return type(module).__name__ in units


__all__ = ['FSDP_UNITS', 'folk_fsdp_wrap_policy']
