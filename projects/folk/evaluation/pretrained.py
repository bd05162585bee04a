"""Build a FOLK / MFM model from its config and pre-training checkpoint."""
import copy
from typing import Optional

import torch
import torch.nn as nn
from mmengine.config import Config
from mmengine.registry import DefaultScope
from mmengine.runner import load_checkpoint


def build_model(cfg: Config) -> nn.Module:
    """Build ``cfg.model`` as the Runner does (with ``data_preprocessor``)."""
    from mmpretrain.registry import MODELS
    model_cfg = copy.deepcopy(cfg.model)
    if cfg.get('data_preprocessor', None) is not None:
        model_cfg.setdefault('data_preprocessor', cfg.data_preprocessor)
    return MODELS.build(model_cfg)


def load_pretrained_model(config: str,
                          checkpoint: str,
                          device: Optional[str] = None,
                          cfg_options: Optional[dict] = None) -> nn.Module:
    """The pre-training model of ``config`` with the weights of
    ``checkpoint`` (strict: every key must fit), in eval mode.

    The config is used as written: the model is only run for inference, so
    GPU-only training settings (``AmpOptimWrapper``, ``SyncBN``, which
    normalises with its running statistics in eval mode) need no change on a
    CPU host.

    Args:
        config (str): FOLK / MFM pre-training config.
        checkpoint (str): Checkpoint written by ``tools/train.py``.
        device (str, optional): Defaults to CUDA if available, else CPU.
        cfg_options (dict, optional): Config overrides.

    Returns:
        nn.Module: The model (``backbone``, ``neck``, ``data_preprocessor``
        and, for FOLK, ``teacher``).
    """
    cfg = Config.fromfile(config)
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    DefaultScope.get_instance(
        f'pretrained_{id(cfg)}',
        scope_name=cfg.get('default_scope', 'mmpretrain'))
    model = build_model(cfg)
    load_checkpoint(
        model, checkpoint, map_location='cpu', strict=True, logger='silent')
    device = device or ('cuda' if torch.cuda.is_available() else 'cpu')
    return model.to(device).eval()
