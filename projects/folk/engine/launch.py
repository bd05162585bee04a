"""Checks that ``tools/train.py`` runs before and around MMEngine's Runner.

- :func:`check_cfg_options`: a ``--cfg-options`` key whose top-level name
  is neither in the config nor read by the Runner would be ignored
  silently (``optim_wraper.optimizer.lr=1e-3`` trains at the old lr);
  it is refused, naming the closest existing key.
- :func:`check_optim_wrapper`: ``dtype`` / ``loss_scale`` on a plain
  ``OptimWrapper`` (the fp16 recipe on a config that trains in float32)
  are refused with the option to add.
- :func:`lock_work_dir`: one run per work dir
  (:class:`folk.engine.checkpoint.WorkDirLock`), taken by rank 0.
- :class:`FinishedRunHook`: a resume of a run that already reached its
  last iteration says so instead of exiting without a word.
"""
import difflib
import inspect
import os
from typing import Optional

from mmengine.hooks import Hook
from mmengine.runner import EpochBasedTrainLoop, Runner

from .checkpoint import WorkDirLock
from .device import FP32_WRAPPERS

# Top-level keys MMEngine's Runner and the launchers read beyond the
# arguments of Runner.__init__.
_RUNNER_KEYS = frozenset({
    'activation_checkpointing', 'auto_scale_lr', 'compile', 'custom_imports',
    'efficient_conv_bn_eval', 'find_unused_parameters', 'launcher',
    'model_wrapper_cfg', 'resume', 'load_from', 'runner_type', 'work_dir'
})


def known_top_level_keys(cfg) -> set:
    """Top-level keys that mean something to a run of ``cfg``."""
    params = set(inspect.signature(Runner.__init__).parameters) - {'self'}
    return set(cfg.keys()) | params | _RUNNER_KEYS


def check_cfg_options(cfg, options: Optional[dict]) -> None:
    """Refuse ``--cfg-options`` keys that nothing would read.

    Args:
        cfg (Config): The config before the options are merged.
        options (dict | None): ``--cfg-options`` (dotted keys).

    Raises:
        KeyError: For a top-level name that is neither in ``cfg`` nor read
            by the Runner, naming the closest existing key.
    """
    if not options:
        return
    known = known_top_level_keys(cfg)
    for key in options:
        top = str(key).split('.', 1)[0]
        if top in known or top.startswith('_'):
            continue
        close = difflib.get_close_matches(top, sorted(known), n=1, cutoff=0.6)
        hint = f'; did you mean {close[0]!r}?' if close else ''
        raise KeyError(
            f'--cfg-options {key}: the config has no top-level key {top!r} '
            f'and the Runner does not read one{hint} (the option would be '
            'ignored).')


def check_optim_wrapper(cfg) -> None:
    """Refuse mixed-precision options on a float32 optimizer wrapper.

    Raises:
        ValueError: If ``optim_wrapper`` is an ``OptimWrapper`` (or
            ``SyncFreeOptimWrapper``) with ``dtype`` or ``loss_scale``.
    """
    optim = cfg.get('optim_wrapper', None) or {}
    amp_of = {fp32: amp for amp, fp32 in FP32_WRAPPERS.items()}
    wrapper = optim.get('type', None) or 'OptimWrapper'
    if wrapper not in amp_of:
        return
    amp_keys = [k for k in ('dtype', 'loss_scale') if k in optim]
    if amp_keys:
        raise ValueError(
            'optim_wrapper.' + ' and optim_wrapper.'.join(amp_keys) +
            f" need optim_wrapper.type='{amp_of[wrapper]}'; this config "
            f'trains in float32 with {wrapper}. Add --cfg-options '
            f'optim_wrapper.type={amp_of[wrapper]}.')


def _global_rank(launcher: str) -> int:
    if launcher in (None, 'none'):
        return 0
    for var in ('RANK', 'SLURM_PROCID', 'OMPI_COMM_WORLD_RANK'):
        if var in os.environ:
            return int(os.environ[var])
    return 0


def lock_work_dir(cfg) -> Optional[WorkDirLock]:
    """Lock ``cfg.work_dir`` for this run (rank 0 only).

    Returns:
        WorkDirLock | None: The held lock (keep a reference for the run),
        ``None`` on the other ranks.

    Raises:
        RuntimeError: If another run holds the work dir.
    """
    if _global_rank(cfg.get('launcher', 'none')) != 0:
        return None
    return WorkDirLock(cfg.work_dir).acquire()


class FinishedRunHook(Hook):
    """Warn when a resumed run has nothing left to train."""

    priority = 'VERY_LOW'

    def before_train(self, runner) -> None:
        loop = runner.train_loop
        if isinstance(loop, EpochBasedTrainLoop):
            done, end, key = runner.epoch, loop.max_epochs, 'max_epochs'
        else:
            done, end, key = runner.iter, loop.max_iters, 'max_iters'
        if done < end:
            return
        unit = 'epoch' if key == 'max_epochs' else 'iteration'
        runner.logger.warning(
            f'this run is already finished: resumed at {unit} {done} of '
            f'train_cfg.{key}={end}, so there is nothing to train. To train '
            f'longer, raise train_cfg.{key} and accept the change with '
            '--cfg-options "default_hooks.checkpoint.resume_allow_changes='
            f'[train_cfg.{key}]"; to start a new run, use another '
            '--work-dir.')


__all__ = [
    'FinishedRunHook', 'check_cfg_options', 'check_optim_wrapper',
    'known_top_level_keys', 'lock_work_dir'
]
