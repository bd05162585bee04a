"""Checks of a training config run before anything is built.

:func:`prepare_train_cfg` is called by ``tools/train.py`` between the
command-line merge and ``Runner`` construction:

- entries of ``custom_hooks`` with ``enable=False`` are removed, so that a
  hook of a base config can be switched off on the command line (MMEngine's
  ``--cfg-options`` can change a list's items but not remove one), e.g. the
  k-NN monitor of ``configs/_base_/default_runtime.py`` with
  ``--cfg-options custom_hooks.1.enable=False``;
- the training data is checked (:func:`folk.datasets.check_train_data`): a
  missing, empty or unreadable data folder stops the run with one message
  before the model is built.
"""
from typing import List

from ..datasets import check_train_data


def _disabled(hook) -> bool:
    return hook is None or (isinstance(hook, dict)
                            and hook.get('enable', True) is False)


def drop_disabled_hooks(cfg) -> List[int]:
    """Remove the ``custom_hooks`` entries with ``enable=False``.

    Returns:
        list[int]: The indices removed.
    """
    hooks = cfg.get('custom_hooks', None)
    if not hooks:
        return []
    removed = [i for i, h in enumerate(hooks) if _disabled(h)]
    if removed:
        cfg.custom_hooks = [h for h in hooks if not _disabled(h)]
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
