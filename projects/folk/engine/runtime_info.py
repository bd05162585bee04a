"""Logged training values read from the device at the log interval only.

MMEngine's ``RuntimeInfoHook`` writes every logged value of every iteration
into the message hub, whose ``update_scalar`` calls ``.item()``: one
host-device synchronisation per value and iteration, after which the device
idles through the host work of the next iteration.
:class:`DeferredRuntimeInfoHook` keeps those values (and the gradient norm of
:class:`~folk.engine.optim_wrapper.SyncFreeOptimWrapper`) as device tensors
and writes them, iteration by iteration, into the message hub when the
``LoggerHook`` is about to print them: one copy to the host per log
interval. The message hub ends up with the same values as under MMEngine's
hook, so the log lines, their keys and the smoothed values are unchanged.
"""
from typing import Dict, List, Optional, Tuple, Union

import torch
from mmengine.hooks import LoggerHook, RuntimeInfoHook
from mmengine.registry import HOOKS as MMENGINE_HOOKS
from mmpretrain.registry import HOOKS

Value = Union[torch.Tensor, int, float]


def _register(cls):
    """Register in MMPretrain's registry and in MMEngine's root registry."""
    HOOKS.register_module(module=cls)
    if cls.__name__ not in MMENGINE_HOOKS.module_dict:
        MMENGINE_HOOKS.register_module(module=cls)
    return cls


def optim_wrappers(runner) -> list:
    """The runner's optimizer wrapper(s) as a list."""
    wrappers = getattr(runner, 'optim_wrapper', None)
    if wrappers is None or isinstance(wrappers, dict):
        return []  # not built (no training)
    if hasattr(wrappers, 'values'):  # OptimWrapperDict
        return list(wrappers.values())
    return [wrappers]


def is_log_iteration(runner, batch_idx: int) -> bool:
    """Whether the ``LoggerHook`` may log after training step ``batch_idx``.

    The logger's own conditions (every ``interval`` iterations, the end of
    an epoch), and the last iteration; True for every iteration without a
    ``LoggerHook``.
    """
    logger = next((h for h in runner.hooks if isinstance(h, LoggerHook)), None)
    if logger is None:
        return True
    return bool(
        logger.every_n_inner_iters(batch_idx, logger.interval)
        or logger.end_of_epoch(runner.train_dataloader, batch_idx)
        or runner.iter + 1 >= runner.max_iters)


@_register
class DeferredRuntimeInfoHook(RuntimeInfoHook):
    """``RuntimeInfoHook`` that reads the logged values at the log interval.

    Use it as the runner's ``runtime_info`` default hook
    (``default_hooks = dict(runtime_info=dict(type=
    'DeferredRuntimeInfoHook'))``, as ``configs/_base_/default_runtime.py``
    does). Each iteration's outputs (the model's ``log_vars``: losses,
    entropies) and the gradient norm of a
    :class:`~folk.engine.optim_wrapper.SyncFreeOptimWrapper` are kept as
    detached tensors. They are written into the message hub, in iteration
    order and as MMEngine's hook writes them (``train/<key>``), with one
    host copy, at

    - every iteration on which the ``LoggerHook`` logs (its ``interval``,
      the end of an epoch) and the last iteration,
    - each checkpoint save (the saved message hub is complete),
    - the end of each epoch and of training, before validation.

    Consumers of ``train/*`` scalars between those points (none in
    MMEngine's or FOLK's hooks) see them when they are written.
    """

    def __init__(self) -> None:
        super().__init__()
        self._pending: List[Tuple[str, Value]] = []

    def before_train(self, runner) -> None:
        super().before_train(runner)
        for wrapper in optim_wrappers(runner):
            if hasattr(wrapper, 'pop_log_scalars'):
                wrapper.defer_logging = True

    def after_train_iter(self,
                         runner,
                         batch_idx: int,
                         data_batch=None,
                         outputs: Optional[dict] = None) -> None:
        """Keep this iteration's values; write them at the log interval."""
        for wrapper in optim_wrappers(runner):
            if getattr(wrapper, 'defer_logging', False):
                for key, value in wrapper.pop_log_scalars().items():
                    self._keep(key, value)
        for key, value in (outputs or {}).items():
            self._keep(key, value)
        if is_log_iteration(runner, batch_idx):
            self.flush(runner)

    def _keep(self, key: str, value: Value) -> None:
        if torch.is_tensor(value):
            if value.numel() != 1:
                raise ValueError(
                    f'DeferredRuntimeInfoHook: the logged value {key!r} has '
                    f'{value.numel()} elements; logged values are scalars')
            value = value.detach().reshape(())
        self._pending.append((f'train/{key}', value))

    def flush(self, runner) -> None:
        """Write the kept values into the message hub (one host copy)."""
        if not self._pending:
            return
        pending, self._pending = self._pending, []
        tensors = [v for _, v in pending if torch.is_tensor(v)]
        host: Dict[int, float] = {}
        if tensors:
            groups: Dict[torch.device, List[int]] = {}
            for i, tensor in enumerate(tensors):
                groups.setdefault(tensor.device, []).append(i)
            for indices in groups.values():
                stacked = torch.stack(
                    [tensors[i].to(torch.float64) for i in indices])
                for i, value in zip(indices, stacked.cpu().tolist()):
                    host[i] = value if tensors[i].is_floating_point() \
                        else int(value)
        position = 0
        for key, value in pending:
            if torch.is_tensor(value):
                value = host[position]
                position += 1
            runner.message_hub.update_scalar(key, value)

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        """Write the kept values, and save the complete message hub."""
        if self._pending:
            self.flush(runner)
            if 'message_hub' in checkpoint:
                checkpoint['message_hub'] = runner.message_hub.state_dict()

    def after_train_epoch(self, runner) -> None:
        self.flush(runner)

    def before_val(self, runner) -> None:
        self.flush(runner)
        super().before_val(runner)

    def after_train(self, runner) -> None:
        self.flush(runner)
        super().after_train(runner)


__all__ = ['DeferredRuntimeInfoHook', 'is_log_iteration', 'optim_wrappers']
