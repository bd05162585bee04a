"""Adapting a GPU config to the device of the host (used by the launchers)."""
import warnings

import torch
from mmengine.config import Config


def _replace_sync_bn(node) -> int:
    """Turn every ``SyncBN`` norm config into ``BN`` in place."""
    count = 0
    if isinstance(node, dict):
        if node.get('type') == 'SyncBN':
            node['type'] = 'BN'
            count += 1
        for value in node.values():
            count += _replace_sync_bn(value)
    elif isinstance(node, (list, tuple)):
        for value in node:
            count += _replace_sync_bn(value)
    return count


#: mixed-precision wrapper -> its float32 counterpart without CUDA
FP32_WRAPPERS = {
    'AmpOptimWrapper': 'OptimWrapper',
    'SyncFreeAmpOptimWrapper': 'SyncFreeOptimWrapper',
}


def adapt_cfg_to_device(cfg: Config) -> Config:
    """Make a GPU config runnable on a host without CUDA, in place.

    With CUDA available the config is returned unchanged. Without it:

    - ``AmpOptimWrapper`` (which asserts a GPU) becomes ``OptimWrapper``,
      ``SyncFreeAmpOptimWrapper`` becomes ``SyncFreeOptimWrapper``;
    - an optimizer with ``fused=True`` (the configs' AdamW, for CUDA) gets
      the usual implementation (``fused`` removed);
    - the distributed backend becomes gloo and DDP gets ``device_ids=None``
      (FSDP, under ``FSDPStrategy``: ``device_id=torch.device('cpu')``);
    - ``SyncBN`` (GPU only) becomes ``BN``.

    Each change is reported with a warning.
    """
    if torch.cuda.is_available():
        return cfg
    optim = cfg.get('optim_wrapper', None)
    if optim is not None and optim.get('type') in FP32_WRAPPERS:
        fp32 = FP32_WRAPPERS[optim.type]
        warnings.warn('CUDA is not available: training in float32 with '
                      f'{fp32} instead of {optim.type}.')
        optim.type = fp32
        for key in ('loss_scale', 'dtype'):
            optim.pop(key, None)
    optimizer = optim.get('optimizer', None) if optim is not None else None
    if isinstance(optimizer, dict) and optimizer.get('fused'):
        warnings.warn(
            f'CUDA is not available: the usual {optimizer.get("type")}'
            ' instead of the fused one (fused=True is for CUDA).')
        optimizer.pop('fused')
    env = cfg.setdefault('env_cfg', {})
    env.setdefault('dist_cfg', {})['backend'] = 'gloo'
    if cfg.get('launcher', 'none') != 'none':
        wrapper = dict(cfg.get('model_wrapper_cfg', None) or {})
        wrapper.setdefault('type', 'MMDistributedDataParallel')
        wrapper['device_ids'] = None
        cfg.model_wrapper_cfg = wrapper
    strategy = cfg.get('strategy', None)
    if strategy is not None and strategy.get('type') == 'FSDPStrategy':
        # MMEngine passes device_id=LOCAL_RANK, a CUDA device index
        strategy.setdefault('model_wrapper',
                            {})['device_id'] = torch.device('cpu')
    if _replace_sync_bn(cfg.get('model', {})):
        warnings.warn('CUDA is not available: SyncBN replaced by BN.')
    return cfg


__all__ = ['adapt_cfg_to_device']
