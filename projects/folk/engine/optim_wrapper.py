"""Optimizer wrappers whose step never waits for the device.

MMEngine's ``OptimWrapper._clip_grad`` turns the gradient norm into a Python
float for the log (one host-device synchronisation per step). The wrappers
here keep it as a tensor, hand it to
:class:`~folk.engine.runtime_info.DeferredRuntimeInfoHook`, which reads it at
the log interval, and can skip a step with non-finite gradients or a flagged
non-finite loss *on the device*, for :class:`~folk.engine.NonFiniteLossHook`.
"""
from typing import Callable, Dict, List, Optional

import torch
from mmengine.optim import AmpOptimWrapper, OptimWrapper
from mmengine.registry import OPTIM_WRAPPERS as MMENGINE_OPTIM_WRAPPERS
from mmpretrain.registry import OPTIM_WRAPPERS


def _register(cls):
    """Register in MMPretrain's registry and in MMEngine's root registry."""
    OPTIM_WRAPPERS.register_module(module=cls)
    if cls.__name__ not in MMENGINE_OPTIM_WRAPPERS.module_dict:
        MMENGINE_OPTIM_WRAPPERS.register_module(module=cls)
    return cls


def supports_found_inf(optimizer: torch.optim.Optimizer) -> bool:
    """Whether ``optimizer.step`` skips itself on a ``found_inf`` tensor.

    True for the fused implementations of torch's Adam / AdamW / SGD (the
    attribute ``GradScaler`` relies on too): their kernels leave the
    parameters and the state unchanged when ``found_inf`` is 1.
    """
    return bool(getattr(optimizer, '_step_supports_amp_scaling', False))


def step_unless(optimizer: torch.optim.Optimizer, ok: torch.Tensor,
                step: Callable[..., None], **kwargs) -> None:
    """Run ``step(**kwargs)`` so that it takes effect only where ``ok``.

    ``ok`` is a 0-dim bool tensor that stays on the device: no
    synchronisation. A fused optimizer gets ``found_inf = ~ok``; for any
    other optimizer the parameters with a gradient and their state tensors
    are copied before the step and put back with ``torch.where`` (state
    created by this step is put back to zeros, the initial state of Adam,
    AdamW and SGD). That copy is one read and one write of those tensors;
    it synchronises only where a state tensor lives on another device than
    ``ok`` (torch's non-fused Adam keeps ``step`` on the CPU for CUDA
    parameters: there, use the fused optimizer).

    Args:
        optimizer (torch.optim.Optimizer): The optimizer ``step`` updates.
        ok (torch.Tensor): 0-dim bool tensor: take the step.
        step (Callable): The optimizer step, e.g. ``optimizer.step``.
        **kwargs: Passed to ``step``.
    """
    if supports_found_inf(optimizer):
        optimizer.found_inf = (~ok).float()
        try:
            step(**kwargs)
        finally:
            del optimizer.found_inf
        return
    params: List[torch.Tensor] = [
        p for group in optimizer.param_groups for p in group['params']
        if p.grad is not None
    ]
    with torch.no_grad():
        old_params = [p.detach().clone() for p in params]
        old_state = [{
            k: v.detach().clone()
            for k, v in optimizer.state.get(p, {}).items()
            if torch.is_tensor(v)
        } for p in params]
    step(**kwargs)
    with torch.no_grad():
        for param, old in zip(params, old_params):
            param.copy_(torch.where(_on(ok, param), param, old))
        for param, old in zip(params, old_state):
            for key, value in optimizer.state.get(param, {}).items():
                if not torch.is_tensor(value):
                    continue
                before = old.get(key)
                if before is None:
                    before = torch.zeros_like(value)
                value.copy_(torch.where(_on(ok, value), value, before))


def _on(flag: torch.Tensor, tensor: torch.Tensor) -> torch.Tensor:
    return flag if flag.device == tensor.device else flag.to(tensor.device)


class SyncFreeMixin:
    """The gradient norm as a tensor, and the step skipped on the device.

    Attributes set by the hooks that use them, in ``before_train``:

    - ``defer_logging`` (by
      :class:`~folk.engine.runtime_info.DeferredRuntimeInfoHook`): keep the
      gradient norm as a tensor for :meth:`pop_log_scalars` instead of
      writing ``float(grad_norm)`` into the message hub (MMEngine's
      behaviour, kept when the attribute is False).
    - ``skip_nonfinite`` (by :class:`~folk.engine.NonFiniteLossHook`):
      take a step only if the gradient norm is finite and no loss term was
      flagged with :meth:`flag_nonfinite`; the verdict of the last step is
      :attr:`step_ok` (a device tensor), the norm it checked
      :attr:`step_norm`. Without ``clip_grad`` the norm is computed for this
      check (one more read of the gradients). With an enabled fp16
      ``GradScaler`` the scaler skips the steps with non-finite gradients
      itself, as overflows (it synchronises once per step to do so); the
      verdict then covers the flagged loss only, whose step is skipped by
      making its gradients NaN.
    """

    defer_logging: bool = False
    skip_nonfinite: bool = False

    def _init_sync_free(self) -> None:
        self.grad_norm: Optional[torch.Tensor] = None
        self.step_ok: Optional[torch.Tensor] = None
        self.step_norm: Optional[torch.Tensor] = None
        self._loss_nonfinite: Optional[torch.Tensor] = None

    def flag_nonfinite(self, flag: torch.Tensor) -> None:
        """Mark the coming step as bad where ``flag`` (0-dim bool) is True."""
        flag = flag.detach().reshape(()).bool()
        if self._loss_nonfinite is None:
            self._loss_nonfinite = flag
        else:
            self._loss_nonfinite = self._loss_nonfinite | flag

    def pop_log_scalars(self) -> Dict[str, torch.Tensor]:
        """The scalars of the last step for the log (once), as tensors."""
        if self.grad_norm is None:
            return {}
        norm, self.grad_norm = self.grad_norm, None
        return {getattr(self, 'grad_name', None) or 'grad_norm': norm}

    def _params_with_grad(self) -> List[torch.Tensor]:
        return [
            p for group in self.optimizer.param_groups for p in group['params']
            if p.requires_grad and p.grad is not None
        ]

    def _clip_grad(self) -> None:
        params = self._params_with_grad()
        if not params:
            return
        norm = self.clip_func(params, **self.clip_grad_kwargs)
        if norm is None:  # clip_grad_value_
            return
        self.grad_norm = norm.detach()
        if not self.defer_logging:
            self.message_hub.update_scalar(f'train/{self.grad_name}',
                                           float(norm))

    def _take_loss_flag(self) -> Optional[torch.Tensor]:
        flag, self._loss_nonfinite = self._loss_nonfinite, None
        return flag

    def _guarded_step(self, step: Callable[..., None], **kwargs) -> None:
        """``step`` if the gradient norm is finite and no loss is flagged."""
        flag = self._take_loss_flag()
        if not self.skip_nonfinite:
            step(**kwargs)
            return
        norm = self.grad_norm
        if norm is None or getattr(self, 'grad_name', None) != 'grad_norm':
            grads = [p.grad for p in self._params_with_grad()]
            norm = torch.nn.utils.get_total_norm(grads) if grads else None
        ok = torch.isfinite(norm) if norm is not None else None
        if flag is not None:
            ok = ~flag if ok is None else ok & ~_on(flag, ok)
        self.step_ok, self.step_norm = ok, norm
        if ok is None:
            step(**kwargs)
        else:
            step_unless(self.optimizer, ok, step, **kwargs)


@_register
class SyncFreeOptimWrapper(SyncFreeMixin, OptimWrapper):
    """:class:`mmengine.optim.OptimWrapper` without a host sync per step.

    Same arguments and behaviour as MMEngine's wrapper, plus
    :class:`SyncFreeMixin`: under
    :class:`~folk.engine.runtime_info.DeferredRuntimeInfoHook` the gradient
    norm is logged from a tensor read at the log interval, and under
    :class:`~folk.engine.NonFiniteLossHook` a step with a non-finite
    gradient norm or loss is skipped on the device.
    """

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._init_sync_free()

    def step(self, **kwargs) -> None:
        """Clip, then update the parameters (skipped if flagged bad)."""
        self.grad_norm = None
        if self.clip_grad_kwargs:
            self._clip_grad()
        self._guarded_step(self.optimizer.step, **kwargs)


@_register
class SyncFreeAmpOptimWrapper(SyncFreeMixin, AmpOptimWrapper):
    """:class:`mmengine.optim.AmpOptimWrapper` without a host sync per step.

    As :class:`SyncFreeOptimWrapper`. With bf16 and the ``GradScaler``
    disabled (``loss_scale=dict(enabled=False)``, the shipped configs) no
    step synchronises; an enabled fp16 scaler synchronises once per step
    (torch's ``GradScaler.step``) and skips the steps with non-finite
    gradients itself.
    """

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._init_sync_free()

    def step(self, **kwargs) -> None:
        """Unscale and clip, then update (skipped if flagged bad)."""
        self.grad_norm = None
        scaler = self.loss_scaler
        if not scaler.is_enabled():
            if self.clip_grad_kwargs:
                scaler.unscale_(self.optimizer)  # no-op, as MMEngine's
                self._clip_grad()
            self._guarded_step(self.optimizer.step, **kwargs)
            scaler.update(self._scale_update_param)
            return
        # The GradScaler skips steps with non-finite gradients (overflow);
        # a flagged loss joins them: its gradients are made NaN before the
        # scaler looks for infs, in unscale_.
        flag = self._take_loss_flag()
        if self.skip_nonfinite and flag is not None:
            grads = [p.grad for p in self._params_with_grad()]
            if grads:
                nan = grads[0].new_full((), float('nan'))
                torch._foreach_mul_(
                    grads,
                    torch.where(_on(flag, nan), nan, torch.ones_like(nan)))
            self.step_ok, self.step_norm = ~flag, None
        if self.clip_grad_kwargs:
            scaler.unscale_(self.optimizer)
            self._clip_grad()
        scaler.step(self.optimizer, **kwargs)
        scaler.update(self._scale_update_param)


__all__ = [
    'SyncFreeMixin', 'SyncFreeOptimWrapper', 'SyncFreeAmpOptimWrapper',
    'step_unless', 'supports_found_inf'
]
