"""Checks of a training config run before anything is built.

:func:`prepare_train_cfg` is called by ``tools/train.py`` between the
command-line merge and ``Runner`` construction:

- entries of ``custom_hooks`` set to ``None`` are removed, so that a hook of
  a base config can be switched off on the command line, e.g. the k-NN
  monitor of ``configs/_base_/default_runtime.py`` with
  ``--cfg-options custom_hooks.1=None``;
- the training data is checked (:func:`folk.datasets.check_train_data`): a
  missing, empty or unreadable data folder stops the run with one message
  before the model is built.
"""
from typing import List

from ..datasets import check_train_data


def drop_disabled_hooks(cfg) -> List[int]:
    """Remove the ``None`` entries of ``cfg.custom_hooks``; their indices."""
    hooks = cfg.get('custom_hooks', None)
    if not hooks:
        return []
    removed = [i for i, h in enumerate(hooks) if h is None]
    if removed:
        cfg.custom_hooks = [h for h in hooks if h is not None]
    return removed


def prepare_train_cfg(cfg):
    """Drop disabled custom hooks and check the training data.

    Raises:
        folk.datasets.TrainDataError: The training data cannot be used.
    """
    drop_disabled_hooks(cfg)
    check_train_data(cfg)
    return cfg


__all__ = ['drop_disabled_hooks', 'prepare_train_cfg']
