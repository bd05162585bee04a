"""What changed between a checkpoint's config and the config resuming it.

The MMEngine Runner stores its config as text in every checkpoint
(``meta['cfg']``, the config's ``pretty_text``). With ``resume = True`` a
re-run with other ``--cfg-options`` would otherwise silently continue the
old run; :func:`resume_config_changes` lists the training-relevant keys
that differ, and :class:`folk.engine.SafeCheckpointHook` stops on them.

The checkpoint's text is read with :mod:`ast` and never executed: a
checkpoint is data, and :func:`Config.fromstring` would run it as Python.
"""
import ast
from typing import Any, Dict, Sequence, Tuple

from mmengine.config import Config

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


__all__ = [
    'RESUME_CHECK_KEYS', 'RESUME_IGNORE_KEYS', 'describe_changes',
    'parse_config_text', 'resume_config_changes', 'select_changes'
]
