"""Hooks that make pre-training runs safe to interrupt and to resume.

- :class:`SafeCheckpointHook`: MMEngine's ``CheckpointHook`` that never
  leaves a run without an intact checkpoint, resumes from the newest intact
  one and refuses to resume a run whose recipe was changed.
- :class:`NonFiniteLossHook`: stops (or skips the step) when a loss term is
  NaN or infinite, *before* the optimizer step.

Both are used by ``configs/_base_/default_runtime.py``; see
``docs/reliability.md``.
"""
import os
import os.path as osp
from collections import deque
from typing import Dict, Optional, Sequence, Union

import torch
from mmengine.dist import (all_reduce, broadcast_object_list, get_world_size,
                           is_main_process)
from mmengine.hooks import CheckpointHook, Hook
from mmengine.model import is_model_wrapper
from mmengine.registry import HOOKS as MMENGINE_HOOKS
from mmengine.runner import find_latest_checkpoint
from mmpretrain.registry import HOOKS

from .checkpoint import (atomic_write_text, find_resumable_checkpoint,
                         is_temporary_file, safe_torch_load)
from .resume_config import (describe_changes, resume_config_changes,
                            select_changes)


def _register(cls):
    """Register in MMPretrain's registry and in MMEngine's root registry.

    MMPretrain's is the one configs use (``default_scope='mmpretrain'``);
    the root registry makes the hook available to configs of other scopes.
    """
    HOOKS.register_module(module=cls)
    if cls.__name__ not in MMENGINE_HOOKS.module_dict:
        MMENGINE_HOOKS.register_module(module=cls)
    return cls


@_register
class SafeCheckpointHook(CheckpointHook):
    """``CheckpointHook`` for runs that may be killed at any moment.

    Same arguments and behaviour as :class:`mmengine.hooks.CheckpointHook`,
    plus:

    1. **Atomic files.** Checkpoints are written to a temporary file and
       renamed (:func:`folk.engine.checkpoint.atomic_torch_save`, applied to
       every ``save_checkpoint`` call by :mod:`folk.compat`);
       ``last_checkpoint`` is replaced the same way. A checkpoint file under
       its final name is always complete.
    2. **Delete after save.** With ``max_keep_ckpts`` the outdated
       checkpoint is deleted only after the new one and ``last_checkpoint``
       are on disk (MMEngine deletes first: with ``max_keep_ckpts=1`` a
       crash while saving left no checkpoint at all).
    3. **Auto-resume fallback.** With ``resume=True`` and no ``load_from``
       (``--resume auto``), the newest checkpoint that passes
       :func:`folk.engine.checkpoint.verify_checkpoint` is resumed; each
       truncated or corrupt file skipped is named in a warning. An explicit
       ``load_from`` / ``--resume PATH`` is never replaced. Under
       distributed training only rank 0 reads and verifies the files; the
       other ranks receive its choice (or its error).
    4. **Resume only the same recipe.** A resume whose config differs from
       the one stored in the checkpoint (``meta['cfg']``) in a
       training-relevant key (model, optimizer, schedule, training loop,
       training data, see :mod:`folk.engine.resume_config`) stops with an
       error naming each changed key, old and new value: with ``resume =
       True`` in a config, a re-run with other ``--cfg-options`` would
       otherwise silently continue the old run. Crash recovery (the same
       config) is unaffected. To continue a run with a changed config on
       purpose, set ``resume_allow_changes``, e.g.
       ``--cfg-options default_hooks.checkpoint.resume_allow_changes=True``
       (the accepted changes are logged as a warning). Note that MMEngine
       restores the optimizer and the parameter schedulers from the
       checkpoint: accepted changes of their values (``lr``,
       ``weight_decay``, scheduler milestones) do not take effect; changes
       of the model, the data or ``train_cfg`` (e.g. ``max_iters``) do.
       A checkpoint with a ``meta['config']`` entry is refused: MMEngine's
       ``Runner.resume`` would execute it (``Config.fromstring``).
    5. Leftover temporary files of a killed run are removed when training
       starts.

    Args:
        resume_fallback (bool): Enable 3. Defaults to True.
        resume_allow_changes (bool | Sequence[str]): Config changes that a
            resume accepts (4.): ``False`` none, ``True`` all, or a list of
            dotted keys or key prefixes (e.g. ``['train_cfg.max_iters']``).
            Defaults to False.
        **kwargs: Arguments of :class:`mmengine.hooks.CheckpointHook`.
    """

    def __init__(self,
                 *args,
                 resume_fallback: bool = True,
                 resume_allow_changes: Union[bool, Sequence[str]] = False,
                 **kwargs) -> None:
        super().__init__(*args, **kwargs)
        if not isinstance(resume_allow_changes, (bool, list, tuple)):
            raise TypeError(
                'SafeCheckpointHook: resume_allow_changes must be a bool or '
                'a list of config keys, got '
                f'{type(resume_allow_changes).__name__} '
                f'{resume_allow_changes!r}')
        self.resume_fallback = resume_fallback
        self.resume_allow_changes = resume_allow_changes

    def before_run(self, runner) -> None:
        """Choose and check the checkpoint to resume (before loading)."""
        super().before_run(runner)
        if not getattr(runner, '_resume', False):
            return
        # Rank 0 reads and verifies the files once (a ViT-B checkpoint is
        # ~1.75 GB) and shares its choice, so that every rank resumes from
        # the same file, or raises the same error.
        choice = [None, None]  # [checkpoint or None, error message or None]
        error = None
        if is_main_process():
            try:
                choice[0] = self._choose_resume_checkpoint(runner)
            except Exception as err:  # noqa: BLE001 - re-raised below
                error = err
                choice[1] = f'{type(err).__name__}: {err}'
        broadcast_object_list(choice)
        if error is not None:
            raise error
        path, message = choice
        if message is not None:
            raise RuntimeError(f'rank 0 could not resume: {message}')
        if path is not None and runner._load_from is None:
            # Runner.load_or_resume then resumes from this file ("resume
            # from the specified checkpoint") instead of last_checkpoint.
            runner._load_from = path

    def _choose_resume_checkpoint(self, runner) -> Optional[str]:
        """The checkpoint to resume from, checked against the config."""
        if runner._load_from is not None:
            path = runner._load_from
        elif self.resume_fallback:
            path = find_resumable_checkpoint(
                runner.work_dir, warn=runner.logger.warning)
        else:
            path = find_latest_checkpoint(runner.work_dir)
        if path is not None:
            self._check_resume_config(runner, path)
        return path

    def _check_resume_config(self, runner, path: str) -> None:
        """Raise if ``path`` was written with another training recipe."""
        if not osp.isfile(path):
            runner.logger.warning(
                f'resume: {path} is not a local file; its config is not '
                'compared with the current one')
            return
        # mmap: only the pickled meta is read, not the tensor data
        ckpt = safe_torch_load(path, mmap=True)
        meta = ckpt.get('meta') if isinstance(ckpt, dict) else None
        if isinstance(meta, dict) and 'config' in meta:
            # Runner.resume runs meta['config'] through Config.fromstring,
            # which executes it as Python; MMEngine itself writes 'cfg'.
            raise RuntimeError(
                f"resume: {path} holds meta['config'], which MMEngine's "
                'Runner.resume would execute as Python code; refusing to '
                'resume from it (MMEngine checkpoints store the config in '
                "meta['cfg']).")
        text = meta.get('cfg') if isinstance(meta, dict) else None
        if not isinstance(text, str):
            runner.logger.warning(
                f"resume: {path} holds no config (meta['cfg']); it is not "
                'compared with the current one')
            return
        try:
            changes = resume_config_changes(text, runner.cfg)
        except SyntaxError as err:
            runner.logger.warning(
                f"resume: the config stored in {path} (meta['cfg']) cannot "
                f'be parsed ({err}); it is not compared with the current one')
            return
        allowed = self.resume_allow_changes
        accepted = (
            changes if allowed is True else select_changes(
                changes, allowed or ()))
        refused = {k: v for k, v in changes.items() if k not in accepted}
        if accepted:
            runner.logger.warning(
                f'resume: continuing the run of {path} with these config '
                f'changes (resume_allow_changes):\n'
                f'{describe_changes(accepted)}\n'
                'The optimizer and parameter schedulers are restored from '
                'the checkpoint: changed optim_wrapper / param_scheduler '
                'values do not take effect.')
        if refused:
            raise RuntimeError(
                f'resume: the config differs from the one that wrote {path} '
                f'in {len(refused)} training-relevant key(s):\n'
                f'{describe_changes(refused)}\n'
                'Resuming would continue the old run with another recipe. '
                'Start the new run in another --work-dir (or without '
                '--resume / resume=True), or accept the changes with '
                '--cfg-options '
                'default_hooks.checkpoint.resume_allow_changes=True (or a '
                'list of the keys to accept).')

    def before_train(self, runner) -> None:
        super().before_train(runner)
        if self.max_keep_ckpts > 0:
            # unbounded: the oldest id is dropped only after the new save
            self.keep_ckpt_ids = deque(self.keep_ckpt_ids)
        if is_main_process() and osp.isdir(str(self.out_dir)):
            for name in os.listdir(self.out_dir):
                if is_temporary_file(name):
                    path = osp.join(self.out_dir, name)
                    runner.logger.warning(
                        f'removing the partial checkpoint file {path} of an '
                        'interrupted save')
                    os.remove(path)

    def _save_checkpoint_with_step(self, runner, step, meta):
        to_remove = []
        if self.max_keep_ckpts > 0:
            ids = list(self.keep_ckpt_ids)
            if not ids or ids[-1] != step:
                ids.append(step)
            to_remove = ids[:-self.max_keep_ckpts]
            ids = ids[-self.max_keep_ckpts:]
            self.keep_ckpt_ids = deque(ids)
            # saved inside the new checkpoint: the ids after the deletion
            runner.message_hub.update_info('keep_ckpt_ids', list(ids))

        ckpt_filename = self.filename_tmpl.format(step)
        self.last_ckpt = self.file_backend.join_path(self.out_dir,
                                                     ckpt_filename)
        runner.message_hub.update_info('last_ckpt', self.last_ckpt)
        runner.save_checkpoint(
            self.out_dir,
            ckpt_filename,
            self.file_client_args,
            save_optimizer=self.save_optimizer,
            save_param_scheduler=self.save_param_scheduler,
            meta=meta,
            by_epoch=self.by_epoch,
            backend_args=self.backend_args,
            **self.args)

        if not is_main_process():
            return
        atomic_write_text(
            osp.join(runner.work_dir, 'last_checkpoint'), self.last_ckpt)
        for old in to_remove:
            path = self.file_backend.join_path(self.out_dir,
                                               self.filename_tmpl.format(old))
            if self.file_backend.isfile(path):
                self.file_backend.remove(path)
            elif self.file_backend.isdir(path):
                self.file_backend.rmtree(path)  # deepspeed checkpoints


@_register
class NonFiniteLossHook(Hook):
    """Stop (or skip the step) when a loss term is NaN or infinite.

    ``after_train_iter`` comes too late for this: the optimizer has already
    applied the non-finite gradients. The hook therefore installs, when
    training starts, a guard on the model's ``parse_losses`` (called by
    ``train_step`` after the forward pass and before ``backward`` and the
    optimizer step, also under DDP). The guard checks every logged loss term;
    under distributed training the verdict is all-reduced so that every rank
    takes the same decision.

    Policies:

    - ``'raise'`` (default): raise :class:`FloatingPointError` naming the
      iteration and the loss term(s). No optimizer step is taken and no
      checkpoint is written, so the last checkpoint stays intact; resume
      from it with ``--resume auto``.
    - ``'skip'``: log a warning and skip the optimizer step of that
      iteration (backward still runs so that DDP stays in step; the
      gradients are discarded). Side effects of the forward pass are kept
      (FOLK's teacher EMA update from the still-finite student, the centre
      update); if any model tensor became non-finite the hook raises. After
      ``max_consecutive_skips`` skipped iterations in a row it raises.

    The check costs one host-device synchronisation per iteration (MMEngine
    synchronises on the logged losses anyway).

    Args:
        policy (str): ``'raise'`` or ``'skip'``. Defaults to ``'raise'``.
        max_consecutive_skips (int): Raise after this many consecutive
            skipped iterations. Defaults to 10.
    """

    priority = 'VERY_HIGH'
    POLICIES = ('raise', 'skip')

    def __init__(self,
                 policy: str = 'raise',
                 max_consecutive_skips: int = 10) -> None:
        if policy not in self.POLICIES:
            raise ValueError(f'NonFiniteLossHook: policy must be one of '
                             f'{self.POLICIES}, got {policy!r}')
        if int(max_consecutive_skips) < 1:
            raise ValueError('NonFiniteLossHook: max_consecutive_skips must '
                             f'be >= 1, got {max_consecutive_skips}')
        self.policy = policy
        self.max_consecutive_skips = int(max_consecutive_skips)
        self.skipped = []  # iterations whose step was skipped
        self._pending_skip = False
        self._consecutive = 0

    def before_train(self, runner) -> None:
        """Install the guards on the model and the optimizer wrapper."""
        model = runner.model.module if is_model_wrapper(
            runner.model) else runner.model
        original = getattr(model.parse_losses, '_folk_original',
                           model.parse_losses)

        def parse_losses(losses):
            loss, log_vars = original(losses)
            self._check(runner, model, log_vars)
            return loss, log_vars

        parse_losses._folk_original = original
        model.parse_losses = parse_losses

        if self.policy == 'skip':
            wrappers = runner.optim_wrapper
            wrappers = (
                list(wrappers.values())
                if hasattr(wrappers, 'values') else [wrappers])
            for wrapper in wrappers:
                self._guard_step(wrapper)

    def _guard_step(self, wrapper) -> None:
        original = getattr(wrapper.step, '_folk_original', wrapper.step)

        def step(*args, **kwargs):
            if self._pending_skip:
                self._pending_skip = False
                return None  # update_params still zeroes the gradients
            return original(*args, **kwargs)

        step._folk_original = original
        wrapper.step = step

    def _check(self, runner, model, log_vars: Dict) -> None:
        names = [k for k in log_vars if 'loss' in k]
        if not names:
            return
        values = [
            torch.as_tensor(log_vars[k]).detach().float().reshape(())
            for k in names
        ]
        device = values[0].device
        finite = torch.isfinite(torch.stack([v.to(device) for v in values]))
        flag = (~finite).any().float().reshape(1)
        if get_world_size() > 1:
            all_reduce(flag, op='sum')
        if float(flag) == 0:
            self._consecutive = 0
            return

        iteration = runner.iter + 1
        bad = {
            n: float(v)
            for n, v, ok in zip(names, values, finite.tolist()) if not ok
        }
        terms = ', '.join(f'{n}={v}' for n, v in bad.items()) or \
            'none on this rank (non-finite on another rank)'
        msg = f'non-finite loss at iteration {iteration}: {terms}'
        if self.policy == 'raise':
            last = runner.message_hub.get_info('last_ckpt', None)
            raise FloatingPointError(
                f'{msg}. Training stopped before the optimizer step; the '
                f'last checkpoint ({last or "none saved yet"}) is intact. '
                'Resume with --resume auto, or use '
                "NonFiniteLossHook(policy='skip') to skip such steps.")

        self._consecutive += 1
        if self._consecutive > self.max_consecutive_skips:
            raise FloatingPointError(
                f'{msg}; {self._consecutive} consecutive iterations had a '
                'non-finite loss (max_consecutive_skips='
                f'{self.max_consecutive_skips}): stopping.')
        for name, tensor in model.state_dict().items():
            if (torch.is_tensor(tensor) and tensor.is_floating_point()
                    and not bool(torch.isfinite(tensor).all())):
                raise FloatingPointError(
                    f'{msg}, and the model tensor {name!r} is no longer '
                    'finite: skipping the step cannot recover; stopping.')
        self._pending_skip = True
        self.skipped.append(iteration)
        runner.logger.warning(f'{msg}: skipping the optimizer step')


__all__ = ['SafeCheckpointHook', 'NonFiniteLossHook']
