"""Hooks that make pre-training runs safe to interrupt and to resume.

- :class:`SafeCheckpointHook`: MMEngine's ``CheckpointHook`` that never
  leaves a run without an intact checkpoint, resumes from the newest intact
  one and refuses to resume a run whose recipe was changed.
- :class:`NonFiniteLossHook`: skips the optimizer step of a NaN or infinite
  loss term or gradient norm, and stops (or carries on, by policy).

Both are used by ``configs/_base_/default_runtime.py``; see
``docs/reliability.md``.
"""
import math
import os
import os.path as osp
from collections import deque
from typing import Dict, List, Optional, Sequence, Union

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
from .optim_wrapper import SyncFreeMixin
from .resume_config import (describe_changes, resume_config_changes,
                            select_changes)
from .runtime_info import is_log_iteration, optim_wrappers


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
    """Skip the optimizer step of a non-finite loss or gradient; stop.

    A step is bad when a logged loss term is NaN or infinite, or when the
    gradient norm is (NaN gradients behind a finite loss). ``after_train_iter``
    comes too late to look at the loss: the optimizer has already applied the
    gradients. The hook therefore installs, when training starts, a guard on
    the model's ``parse_losses`` (called by ``train_step`` after the forward
    pass and before ``backward`` and the optimizer step, also under DDP) and
    tells the optimizer wrapper to check the gradient norm. Under distributed
    training the loss verdict is all-reduced so that every rank takes the
    same decision (the gradient norm is the same on every rank).

    With a :class:`~folk.engine.optim_wrapper.SyncFreeOptimWrapper` /
    :class:`~folk.engine.optim_wrapper.SyncFreeAmpOptimWrapper` (the shipped
    configs) nothing waits for the device: a bad step is skipped *on the
    device* and the verdicts are read at the log interval (the
    ``LoggerHook``'s ``interval``) and before each checkpoint save. So the
    policy acts up to one log interval after the bad iteration, and no
    checkpoint is ever written after a bad iteration that was not handled.
    With another wrapper the checks read the device at each iteration (one
    synchronisation per iteration; a warning says so).

    Policies:

    - ``'raise'`` (default): raise :class:`FloatingPointError` naming the
      first bad iteration, the non-finite loss term(s) or gradient norm, the
      iteration at which training stopped and the last checkpoint, which was
      written before the bad iteration and is intact; resume from it with
      ``--resume auto``. The bad step was not taken.
    - ``'skip'``: log a warning per skipped step and carry on. Side effects
      of the forward pass are kept (FOLK's teacher EMA update from the
      still-finite student, the centre update); if a model tensor became
      non-finite the hook raises. After ``max_consecutive_skips`` skipped
      iterations in a row it raises. The end of training logs the skipped
      iterations.

    In both policies the logged ``grad_norm`` of a bad iteration is its own
    (non-finite) value, and a checkpoint whose weights are not all finite is
    refused (the save raises and nothing is written).

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
        self.skipped: List[int] = []  # iterations whose step was skipped
        self.on_device = False
        self._wrappers: list = []
        self._current: Optional[tuple] = None  # (names, terms, bad)
        self._records: List[tuple] = []  # one per iteration, on the device
        self._pending_skip = False
        self._consecutive = 0

    # -- set-up ------------------------------------------------------------
    def before_train(self, runner) -> None:
        """Install the guards on the model and the optimizer wrapper(s)."""
        model = runner.model.module if is_model_wrapper(
            runner.model) else runner.model
        original = getattr(model.parse_losses, '_folk_original',
                           model.parse_losses)

        def parse_losses(losses):
            loss, log_vars = original(losses)
            self._check_losses(runner, model, log_vars)
            return loss, log_vars

        parse_losses._folk_original = original
        model.parse_losses = parse_losses

        self._wrappers = optim_wrappers(runner)
        self.on_device = bool(self._wrappers) and all(
            isinstance(w, SyncFreeMixin) for w in self._wrappers)
        if self.on_device:
            for wrapper in self._wrappers:
                wrapper.skip_nonfinite = True
            return
        names = ', '.join(type(w).__name__ for w in self._wrappers)
        runner.logger.warning(
            f'NonFiniteLossHook: the optimizer wrapper ({names}) is not a '
            'SyncFreeOptimWrapper / SyncFreeAmpOptimWrapper: the loss and '
            'the gradient norm are checked on the host at every iteration '
            '(one device synchronisation per iteration)')
        for wrapper in self._wrappers:
            self._guard_step(runner, model, wrapper)

    # -- the checks ----------------------------------------------------------
    def _check_losses(self, runner, model, log_vars: Dict) -> None:
        names = [k for k in log_vars if 'loss' in k]
        if not names:
            return
        values = [
            torch.as_tensor(log_vars[k]).detach().float().reshape(())
            for k in names
        ]
        device = values[0].device
        terms = torch.stack([v.to(device) for v in values])
        bad = (~torch.isfinite(terms)).any()
        if get_world_size() > 1:
            flag = bad.float().reshape(1)
            all_reduce(flag, op='sum')
            bad = flag[0] > 0
        if self.on_device:
            self._current = (names, terms, bad)
            for wrapper in self._wrappers:
                wrapper.flag_nonfinite(bad)
            return
        # host check, at once (another optimizer wrapper)
        if not bool(bad):
            return
        finite = torch.isfinite(terms).tolist()
        self._bad_step(
            runner,
            model,
            runner.iter + 1,
            self._describe_terms(names, terms.tolist(), finite),
            immediate=True)

    def _guard_step(self, runner, model, wrapper) -> None:
        original = getattr(wrapper.step, '_folk_original', wrapper.step)

        def step(*args, **kwargs):
            if self._pending_skip:  # the loss was non-finite
                self._pending_skip = False
                self._log_grad_norm(runner, wrapper)
                return None  # update_params still zeroes the gradients
            grads = [
                p.grad for g in wrapper.optimizer.param_groups
                for p in g['params'] if p.grad is not None
            ]
            if grads:
                norm = torch.nn.utils.get_total_norm(grads)
                if not bool(torch.isfinite(norm)):
                    self._bad_step(
                        runner,
                        model,
                        runner.iter + 1,
                        f'gradient norm={float(norm)}',
                        immediate=True)
                    self._pending_skip = False
                    self._log_grad_norm(runner, wrapper, float(norm))
                    return None
            return original(*args, **kwargs)

        step._folk_original = original
        wrapper.step = step

    @staticmethod
    def _log_grad_norm(runner, wrapper, value: float = float('nan')) -> None:
        """The skipped step's own grad norm instead of the last one's."""
        if getattr(wrapper, 'clip_grad_kwargs', None):
            runner.message_hub.update_scalar(
                f'train/{getattr(wrapper, "grad_name", "grad_norm")}', value)

    @staticmethod
    def _describe_terms(names, values, finite) -> str:
        return ', '.join(f'{n}={v}' for n, v, ok in zip(names, values, finite)
                         if not ok)

    def after_train_iter(self,
                         runner,
                         batch_idx: int,
                         data_batch=None,
                         outputs=None) -> None:
        """Keep this iteration's verdict; read them at the log interval."""
        if not self.on_device:
            if not self.skipped or self.skipped[-1] != runner.iter + 1:
                self._consecutive = 0
            return
        oks, norms = [], []
        for wrapper in self._wrappers:
            if wrapper.step_ok is not None:
                oks.append(wrapper.step_ok)
                if wrapper.step_norm is not None:
                    norms.append(wrapper.step_norm)
            wrapper.step_ok = wrapper.step_norm = None
        if oks or self._current is not None:
            self._records.append((runner.iter + 1, self._current, oks, norms))
        self._current = None
        if is_log_iteration(runner, batch_idx):
            self.read_verdicts(runner)

    def read_verdicts(self, runner) -> None:
        """Act on the verdicts kept since the last read (one host copy)."""
        records, self._records = self._records, []
        if not records:
            return
        parts = []
        for _, current, oks, norms in records:
            parts += [ok.reshape(1).double() for ok in oks]
            parts += [n.reshape(1).double() for n in norms]
            if current is not None:
                parts.append(current[1].double())
        device = parts[0].device
        host = torch.cat([p.to(device) for p in parts]).cpu().tolist()
        position = 0
        bad_steps = False
        for iteration, current, oks, norms in records:
            ok = host[position:position + len(oks)]
            position += len(oks)
            norm = host[position:position + len(norms)]
            position += len(norms)
            what = ''
            if current is not None:
                names = current[0]
                terms = host[position:position + len(names)]
                position += len(names)
                finite = [math.isfinite(v) for v in terms]
                what = self._describe_terms(names, terms, finite)
            if all(ok) and not what:
                self._consecutive = 0
                continue
            if not what:
                bad = [v for v in norm if not math.isfinite(v)]
                what = f'gradient norm={bad[0] if bad else "non-finite"}'
            bad_steps = True
            self._bad_step(runner, None, iteration, what, immediate=False)
        if bad_steps:
            self._check_model(runner, records[-1][0])

    def _bad_step(self, runner, model, iteration: int, what: str,
                  immediate: bool) -> None:
        """Raise, or count the skipped step (``policy``)."""
        kind = 'loss' if 'gradient norm' not in what else 'gradient'
        msg = f'non-finite {kind} at iteration {iteration}: {what}'
        last = self._last_checkpoint(runner)
        if self.policy == 'raise':
            if immediate:
                when = 'Training stopped before the optimizer step'
            else:
                when = (f'The optimizer step of iteration {iteration} was '
                        'skipped on the device; training stopped at '
                        f'iteration {runner.iter + 1}, where the check is '
                        'read (the log interval, or a checkpoint save)')
            raise FloatingPointError(
                f'{msg}. {when}; the last checkpoint ({last}) is intact. '
                'Resume with --resume auto, or use '
                "NonFiniteLossHook(policy='skip') to skip such steps.")
        self._consecutive += 1
        if self._consecutive > self.max_consecutive_skips:
            raise FloatingPointError(
                f'{msg}; {self._consecutive} consecutive iterations had a '
                'non-finite loss or gradient (max_consecutive_skips='
                f'{self.max_consecutive_skips}): stopping. The last '
                f'checkpoint ({last}) is intact.')
        if immediate:
            self._check_model(runner, iteration, model)
            self._pending_skip = True
        self.skipped.append(iteration)
        runner.logger.warning(f'{msg}: skipping the optimizer step')

    def _check_model(self, runner, iteration: int, model=None) -> None:
        model = model if model is not None else (
            runner.model.module
            if is_model_wrapper(runner.model) else runner.model)
        name = _first_nonfinite(model.state_dict())
        if name is not None:
            raise FloatingPointError(
                f'non-finite values at iteration {iteration}: the model '
                f'tensor {name!r} is no longer finite: skipping steps '
                'cannot recover; stopping. The last checkpoint '
                f'({self._last_checkpoint(runner)}) is intact.')

    @staticmethod
    def _last_checkpoint(runner) -> str:
        """The checkpoint ``last_checkpoint`` points to, as on disk."""
        path = osp.join(runner.work_dir, 'last_checkpoint')
        try:
            with open(path) as f:
                return f.read().strip() or 'none saved yet'
        except OSError:
            return 'none saved yet'

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        """Act on pending verdicts; refuse to save non-finite weights."""
        self.read_verdicts(runner)
        name = _first_nonfinite(checkpoint.get('state_dict', {}))
        if name is not None:
            raise FloatingPointError(
                f'refusing to save the checkpoint of iteration '
                f'{runner.iter + 1}: the model tensor {name!r} is not '
                'finite. Nothing was written; the last checkpoint '
                f'({self._last_checkpoint(runner)}) is intact.')

    def after_train(self, runner) -> None:
        """Act on the last verdicts; log the skipped iterations."""
        self.read_verdicts(runner)
        if self.skipped:
            runner.logger.warning(
                f'NonFiniteLossHook: {len(self.skipped)} optimizer step(s) '
                f'skipped (non-finite loss or gradient) at iteration(s) '
                f'{self.skipped}')


def _first_nonfinite(tensors: Dict) -> Optional[str]:
    """The name of the first floating tensor that is not all finite."""
    floats = [(k, v) for k, v in tensors.items()
              if torch.is_tensor(v) and v.is_floating_point()]
    if not floats:
        return None
    # one host read for all tensors, then the name
    flags = torch.stack([
        torch.isfinite(v).all().to(floats[0][1].device) for _, v in floats
    ]).tolist()
    return next((k for (k, _), ok in zip(floats, flags) if not ok), None)


__all__ = ['SafeCheckpointHook', 'NonFiniteLossHook']
