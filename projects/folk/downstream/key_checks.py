"""Checks that a model really received its pre-trained weights.

Pretrained weights are loaded non-strictly by MMEngine's ``PretrainedInit``
and by MMSeg's ViT / MAE / BEiT backbones, so a wrong key silently leaves a
randomly initialised layer. :func:`check_loaded_keys` verifies a module
against a state dict and :func:`check_weights_equal` that the values
arrived; :class:`folk.downstream.PretrainedKeysCheckHook` runs both at the
start of training.
"""
from dataclasses import dataclass, field
from typing import Dict, List, Mapping, Sequence

import torch
import torch.nn as nn


@dataclass
class KeyCheck:
    """Result of :func:`check_loaded_keys`."""
    missing: List[str] = field(default_factory=list)
    unexpected: List[str] = field(default_factory=list)
    shape_mismatch: List[str] = field(default_factory=list)
    resized: List[str] = field(default_factory=list)
    allowed_missing: List[str] = field(default_factory=list)
    matched: int = 0

    @property
    def ok(self) -> bool:
        return not self.missing and not self.shape_mismatch

    def __str__(self) -> str:
        parts = [f'{self.matched} keys matched']
        for name in ('missing', 'shape_mismatch', 'resized', 'allowed_missing',
                     'unexpected'):
            keys = getattr(self, name)
            if keys:
                parts.append(f'{len(keys)} {name.replace("_", " ")} '
                             f'({", ".join(keys[:8])}'
                             f'{", ..." if len(keys) > 8 else ""})')
        return '; '.join(parts)


def _strip_prefix(state_dict: Mapping, prefix: str) -> Dict[str, object]:
    if not prefix:
        return dict(state_dict)
    return {
        k[len(prefix):]: v
        for k, v in state_dict.items() if k.startswith(prefix)
    }


def check_loaded_keys(model: nn.Module,
                      state_dict: Mapping,
                      prefix: str = '',
                      allow_missing: Sequence[str] = (),
                      resizable: Sequence[str] = ('pos_embed', ),
                      strict: bool = True) -> KeyCheck:
    """Check that ``state_dict`` provides every weight of ``model``.

    Use it on the module that received the pre-trained weights (e.g.
    ``classifier.backbone``): MMEngine's ``PretrainedInit`` and MMSeg's
    ViT / MAE / BEiT backbones load non-strictly and hide mismatches.

    Args:
        model (nn.Module): The module (usually a backbone).
        state_dict (Mapping): Weights meant for it (a converted file's
            ``state_dict``, or a plain state dict).
        prefix (str): Only keys starting with it are used, with it removed
            (``'backbone.'`` for the MMPretrain format).
        allow_missing (Sequence[str]): Key prefixes of ``model`` that are
            new and may be missing (e.g. ``'ln2.'``, the ``fc_norm`` that
            ``out_type='avg_featmap'`` adds).
        resizable (Sequence[str]): Keys whose shape may differ because the
            model resizes them on load (position embeddings).
        strict (bool): Raise if anything is missing or has the wrong shape.

    Returns:
        KeyCheck: Missing, unexpected, shape-mismatched and resized keys.

    Raises:
        KeyError: If ``strict`` and a key is missing or has a wrong shape.
    """
    if 'state_dict' in state_dict and isinstance(state_dict['state_dict'],
                                                 Mapping):
        state_dict = state_dict['state_dict']
    source = _strip_prefix(state_dict, prefix)
    target = model.state_dict()
    result = KeyCheck()
    for key, value in target.items():
        if key not in source:
            if any(key.startswith(p) for p in allow_missing):
                result.allowed_missing.append(key)
            else:
                result.missing.append(key)
            continue
        src_shape = tuple(getattr(source[key], 'shape', ()))
        if src_shape != tuple(value.shape):
            if key.split('.')[-1] in resizable:
                result.resized.append(key)
            else:
                result.shape_mismatch.append(
                    f'{key} {src_shape} vs {tuple(value.shape)}')
            continue
        result.matched += 1
    result.unexpected = [k for k in source if k not in target]
    if strict and not result.ok:
        raise KeyError(f'pre-trained weights do not fit '
                       f'{type(model).__name__}: {result}')
    return result


def check_weights_equal(model: nn.Module,
                        state_dict: Mapping,
                        prefix: str = '') -> List[str]:
    """Keys whose values in ``model`` differ from ``state_dict``.

    Only keys present in both with the same shape are compared; an empty
    list means the weights were really loaded.
    """
    if 'state_dict' in state_dict and isinstance(state_dict['state_dict'],
                                                 Mapping):
        state_dict = state_dict['state_dict']
    source = _strip_prefix(state_dict, prefix)
    differ = []
    for key, value in model.state_dict().items():
        ref = source.get(key)
        if ref is None or tuple(ref.shape) != tuple(value.shape):
            continue
        if not torch.equal(value.detach().cpu().to(ref.dtype), ref.cpu()):
            differ.append(key)
    return differ


__all__ = ['KeyCheck', 'check_loaded_keys', 'check_weights_equal']
