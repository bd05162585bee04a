"""What changed between a checkpoint's config and the config resuming it.

The MMEngine Runner stores its config as text in every checkpoint
(``meta['cfg']``, the config's ``pretty_text``). With ``resume = True`` a
re-run with other ``--cfg-options`` would otherwise silently continue the
old run; :func:`resume_config_changes` lists the training-relevant keys
that differ, and :class:`folk.engine.SafeCheckpointHook` stops on them.

The checkpoint's text is read with :mod:`ast` and never executed: a
checkpoint is data, and :func:`Config.fromstring` would run it as Python.

The config does not say on how many processes a run trains.
:class:`RunScaleHook` records the run's scale in every checkpoint (the
effective batch, world size x batch per process, and the iterations per
epoch) and stops a resume on another scale, unless it is accepted; see its
docstring.
"""
import ast
from typing import Any, Dict, List, Sequence, Tuple

import torch
from mmengine.config import Config
from mmengine.dist import get_world_size
from mmengine.hooks import Hook
from mmengine.model import BaseAveragedModel, is_model_wrapper
from mmengine.registry import HOOKS as MMENGINE_HOOKS
from mmpretrain.registry import HOOKS

#: Config keys whose change makes a resumed run a different experiment:
#: the model, the optimizer and its schedule, the training loop and what
#: the training data loader yields.
RESUME_CHECK_KEYS = ('model', 'optim_wrapper', 'param_scheduler', 'train_cfg',
                     'train_dataloader', 'auto_scale_lr')

#: Keys below :data:`RESUME_CHECK_KEYS` that may change on resume: how and
#: from where the data are read, not which data or how they are processed.
RESUME_IGNORE_KEYS = ('train_dataloader.num_workers',
                      'train_dataloader.persistent_workers',
                      'train_dataloader.pin_memory',
                      'train_dataloader.prefetch_factor',
                      'train_dataloader.dataset.data_root')


class _Source(str):
    """A config value that is not a plain literal, kept as its source."""

    def __repr__(self) -> str:
        return str(self)


class _Absent:
    """Marks a key that one of the two configs does not have."""

    def __repr__(self) -> str:
        return '<absent>'


_MISSING = _Absent()


def _literal(node: ast.AST) -> Any:
    """The value of a ``pretty_text`` expression, without evaluating code.

    Plain literals, ``dict(k=v, ...)`` and signed numbers are rebuilt
    (tuples as lists); anything else is kept as its source text, which is
    enough to tell whether it changed.
    """
    if isinstance(node, ast.Constant):
        return node.value
    if isinstance(node, (ast.List, ast.Tuple, ast.Set)):
        return [_literal(e) for e in node.elts]
    if isinstance(node, ast.Dict) and None not in node.keys:
        return {
            _literal(k): _literal(v)
            for k, v in zip(node.keys, node.values)
        }
    if (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
            and node.func.id == 'dict' and not node.args
            and all(kw.arg is not None for kw in node.keywords)):
        return {kw.arg: _literal(kw.value) for kw in node.keywords}
    if (isinstance(node, ast.UnaryOp) and isinstance(node.op,
                                                     (ast.USub, ast.UAdd))
            and isinstance(node.operand, ast.Constant)
            and isinstance(node.operand.value, (int, float))):
        value = node.operand.value
        return -value if isinstance(node.op, ast.USub) else value
    return _Source(ast.unparse(node))


def parse_config_text(text: str) -> Dict[str, Any]:
    """Top-level assignments of a config's ``pretty_text``, not executed.

    Args:
        text (str): Config text (``meta['cfg']`` of a checkpoint).

    Returns:
        dict: ``{name: value}`` for every ``name = value`` statement.

    Raises:
        SyntaxError: If ``text`` is not Python.
    """
    out = {}
    for stmt in ast.parse(text).body:
        if (isinstance(stmt, ast.Assign) and len(stmt.targets) == 1
                and isinstance(stmt.targets[0], ast.Name)):
            out[stmt.targets[0].id] = _literal(stmt.value)
    return out


def _flatten(value: Any, prefix: str, out: Dict[str, Any]) -> None:
    """Dotted keys of nested dicts and of lists of containers."""
    if isinstance(value, dict) and value:
        for key, item in value.items():
            _flatten(item, f'{prefix}.{key}' if prefix else str(key), out)
    elif isinstance(value, list) and any(
            isinstance(v, (dict, list)) for v in value):
        for i, item in enumerate(value):
            _flatten(item, f'{prefix}.{i}', out)
        out[f'{prefix}.<length>'] = len(value)
    else:
        out[prefix] = value


def _under(key: str, prefixes: Sequence[str]) -> bool:
    return any(key == p or key.startswith(p + '.') for p in prefixes)


def _short(value: Any, width: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= width else text[:width - 3] + '...'


def resume_config_changes(
        checkpoint_cfg_text: str,
        cfg: Config,
        keys: Sequence[str] = RESUME_CHECK_KEYS,
        ignore: Sequence[str] = RESUME_IGNORE_KEYS
) -> Dict[str, Tuple[Any, Any]]:
    """Training-relevant differences between a checkpoint's config and
    ``cfg``.

    Both configs go through the same path (``pretty_text`` parsed by
    :func:`parse_config_text`), so a config resumed unchanged has no
    differences whatever its formatting.

    Args:
        checkpoint_cfg_text (str): ``meta['cfg']`` of the checkpoint.
        cfg (Config): The config of the resuming run.
        keys (Sequence[str]): Dotted key prefixes to compare. Defaults to
            :data:`RESUME_CHECK_KEYS`.
        ignore (Sequence[str]): Dotted key prefixes under ``keys`` that may
            differ. Defaults to :data:`RESUME_IGNORE_KEYS`.

    Returns:
        dict[str, tuple]: ``{dotted key: (checkpoint value, new value)}``
        sorted by key, ``<absent>`` for a key that one side lacks; empty
        when nothing relevant changed.
    """
    old: Dict[str, Any] = {}
    new: Dict[str, Any] = {}
    _flatten(parse_config_text(checkpoint_cfg_text), '', old)
    _flatten(parse_config_text(cfg.pretty_text), '', new)
    changes = {}
    for key in sorted(set(old) | set(new)):
        if not _under(key, keys) or _under(key, ignore):
            continue
        before, after = old.get(key, _MISSING), new.get(key, _MISSING)
        if before != after:
            changes[key] = (before, after)
    return changes


def select_changes(changes: Dict[str, Tuple[Any, Any]],
                   prefixes: Sequence[str]) -> Dict[str, Tuple[Any, Any]]:
    """The changes whose key is one of ``prefixes`` or lies below one."""
    return {k: v for k, v in changes.items() if _under(k, prefixes)}


def describe_changes(changes: Dict[str, Tuple[Any, Any]]) -> str:
    """One ``key: old -> new`` line per change (values shortened)."""
    return '\n'.join(f'  {key}: {_short(old)} -> {_short(new)}'
                     for key, (old, new) in changes.items())


#: Keys of ``meta['run_scale']`` that a resume compares.
RUN_SCALE_KEYS = ('effective_batch', 'iters_per_epoch')
#: Scheduler attributes counted in iterations (MMEngine's converted
#: epoch-based schedules), scaled by new / old iterations per epoch; values
#: from ``INF`` (1e9) on are left alone. ``_global_step`` (the iteration
#: compared with ``begin`` / ``end``) is converted like the loop's counter.
_ITER_ATTRS = ('begin', 'end', 'last_step', 'T_max')
_INF = int(1e9)


def run_scale(runner) -> Dict[str, int]:
    """World size, batch per process, their product and iterations per
    epoch of ``runner``'s training data loader."""
    loader = runner.train_dataloader
    world = get_world_size()
    return dict(
        world_size=world,
        batch_size=int(loader.batch_size),
        effective_batch=world * int(loader.batch_size),
        iters_per_epoch=len(loader))


@HOOKS.register_module()
class RunScaleHook(Hook):
    """Record the run's scale in checkpoints; resume only on the same one.

    A restart on another number of GPUs or nodes keeps the config, so the
    config check of :class:`SafeCheckpointHook` cannot see it. MMEngine
    would then continue silently with the old run's iteration-converted
    schedules (``begin`` / ``end`` / ``T_max`` in old iterations), the old
    lr (the restored optimizer overrides ``auto_scale_lr``), the new
    ``max_iters``, and a teacher momentum ``steps / max_iters`` that jumps
    and later exceeds 1.

    - **Saving**: ``meta['run_scale']`` = ``world_size``, ``batch_size``,
      ``effective_batch`` (their product) and ``iters_per_epoch``.
    - **Resuming** (not ``load_from``): a checkpoint whose
      ``effective_batch`` or ``iters_per_epoch`` differs stops the run with
      an error naming both values, unless the checkpoint hook's
      ``resume_allow_changes`` accepts them (``True``, ``'run_scale'`` or
      ``'run_scale.effective_batch'`` / ``'run_scale.iters_per_epoch'``).
    - **Accepted**: the checkpoint is converted to the new scale before
      MMEngine restores it. With an epoch-based loop, the iteration counter,
      the schedulers' iteration-based ``begin`` / ``end`` / ``last_step`` /
      ``T_max`` and the EMA teachers' ``steps`` are multiplied by new / old
      iterations per epoch, so the schedules end at the new ``max_iters``
      and the teacher momentum follows the same cosine in epochs. With
      ``auto_scale_lr`` enabled the lr (optimizer and lr schedulers) is
      multiplied by new / old effective batch, as a fresh start at the new
      scale would be.

    A checkpoint without ``meta['run_scale']`` is resumed with a warning.
    """

    priority = 'VERY_LOW'

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        checkpoint.setdefault('meta', {})['run_scale'] = run_scale(runner)

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        if not getattr(runner, '_resume', False):
            return  # load_from: weights only, no schedule is restored
        old = (checkpoint.get('meta') or {}).get('run_scale')
        new = run_scale(runner)
        if not isinstance(old, dict):
            runner.logger.warning(
                "resume: the checkpoint records no run scale (meta['run_"
                "scale']); the effective batch and iterations per epoch are "
                'not compared')
            return
        changes = {
            f'run_scale.{k}': (old.get(k), new[k])
            for k in RUN_SCALE_KEYS if old.get(k) != new[k]
        }
        if not changes:
            return
        allowed = self._allowed(runner)
        accepted = (
            changes if allowed is True else select_changes(
                changes, allowed or ()))
        refused = {k: v for k, v in changes.items() if k not in accepted}
        scale = (f"checkpoint: {old.get('world_size')} x "
                 f"{old.get('batch_size')} = {old.get('effective_batch')} "
                 f"images per step, {old.get('iters_per_epoch')} iterations "
                 f"per epoch; now: {new['world_size']} x {new['batch_size']}"
                 f" = {new['effective_batch']}, {new['iters_per_epoch']}")
        if refused:
            raise RuntimeError(
                'resume: the run scale differs from the checkpoint\'s ('
                f'{scale}):\n{describe_changes(refused)}\n'
                'The schedules, the lr and the teacher momentum of the '
                'checkpoint were computed for its scale. Resume on the same '
                'number of processes and batch size, or accept the change '
                'with --cfg-options default_hooks.checkpoint.'
                "resume_allow_changes=\"['run_scale']\" (the checkpoint is "
                'then converted to the new scale).')
        runner.logger.warning(
            f'resume: continuing on another run scale ({scale}); the '
            'iteration counter, schedules, teacher steps and lr are '
            'converted (RunScaleHook)')
        convert_run_scale(runner, checkpoint, old, new)

    @staticmethod
    def _allowed(runner):
        for hook in runner.hooks:
            if hasattr(hook, 'resume_allow_changes'):
                return hook.resume_allow_changes
        return False


def _scaled(value: int, ratio: float) -> int:
    return value if value >= _INF else int(round(value * ratio))


def _scheduler_states(checkpoint: dict) -> List[dict]:
    states = checkpoint.get('param_schedulers') or []
    if isinstance(states, dict):
        return [s for group in states.values() for s in group]
    return list(states)


def convert_run_scale(runner, checkpoint: dict, old: Dict[str, int],
                      new: Dict[str, int]) -> None:
    """Convert a checkpoint of scale ``old`` to ``new`` in place (see
    :class:`RunScaleHook`)."""
    meta = checkpoint['meta']
    epoch_based = hasattr(runner.train_loop, 'max_epochs')
    if epoch_based and old['iters_per_epoch'] != new['iters_per_epoch']:
        ratio = new['iters_per_epoch'] / old['iters_per_epoch']
        epoch = int(meta.get('epoch', 0))
        done = epoch * old['iters_per_epoch']

        def convert(step: int) -> int:
            if step >= done:  # the iterations of an unfinished epoch
                return epoch * new['iters_per_epoch'] + _scaled(
                    step - done, ratio)
            return _scaled(step, ratio)

        meta['iter'] = convert(int(meta['iter']))
        for state in _scheduler_states(checkpoint):
            if state.get('by_epoch', True):
                continue
            for attr in _ITER_ATTRS:
                if isinstance(state.get(attr), int):
                    state[attr] = _scaled(state[attr], ratio)
            if isinstance(state.get('_global_step'), int):
                state['_global_step'] = convert(state['_global_step'])
            if 'total_iters' in state:  # LinearLR, PolyLR: end - begin - 1
                state['total_iters'] = state['end'] - state['begin'] - 1
        model = runner.model.module if is_model_wrapper(
            runner.model) else runner.model
        weights = checkpoint.get('state_dict', {})
        for name, module in model.named_modules():
            key = f'{name}.steps' if name else 'steps'
            if isinstance(module, BaseAveragedModel) and key in weights:
                weights[key] = torch.as_tensor(
                    convert(int(weights[key])), dtype=weights[key].dtype)
    auto = runner.auto_scale_lr or {}
    if auto.get('enable', False) and \
            old['effective_batch'] != new['effective_batch']:
        factor = new['effective_batch'] / old['effective_batch']
        for group in (checkpoint.get('optimizer')
                      or {}).get('param_groups', []):
            for key in ('lr', 'initial_lr'):
                if key in group:
                    group[key] *= factor
        for state in _scheduler_states(checkpoint):
            if state.get('param_name') != 'lr':
                continue
            for key in ('base_values', '_last_value'):
                if key in state:
                    state[key] = [v * factor for v in state[key]]


def _register_root(cls) -> None:
    """Also in MMEngine's root registry, for configs of other scopes."""
    if cls.__name__ not in MMENGINE_HOOKS.module_dict:
        MMENGINE_HOOKS.register_module(module=cls)


_register_root(RunScaleHook)

__all__ = [
    'RESUME_CHECK_KEYS', 'RESUME_IGNORE_KEYS', 'RUN_SCALE_KEYS',
    'RunScaleHook', 'convert_run_scale', 'describe_changes',
    'parse_config_text', 'resume_config_changes', 'run_scale', 'select_changes'
]
