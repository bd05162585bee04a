"""Runner-level additions of FOLK: checkpoints, hooks, optimizer wrappers."""
from .checkpoint import (atomic_torch_save, atomic_write_text,
                         find_resumable_checkpoint, safe_load_url,
                         safe_torch_load, verify_checkpoint)
from .device import adapt_cfg_to_device
from .hooks import NonFiniteLossHook, SafeCheckpointHook
from .monitor_hooks import CollapseMonitorHook, KNNMonitorHook
from .optim_wrapper import SyncFreeAmpOptimWrapper, SyncFreeOptimWrapper
from .resume_config import resume_config_changes
from .runtime_info import DeferredRuntimeInfoHook

__all__ = [
    'CollapseMonitorHook', 'DeferredRuntimeInfoHook', 'KNNMonitorHook',
    'NonFiniteLossHook', 'SafeCheckpointHook', 'SyncFreeAmpOptimWrapper',
    'SyncFreeOptimWrapper', 'adapt_cfg_to_device', 'atomic_torch_save',
    'atomic_write_text', 'find_resumable_checkpoint', 'resume_config_changes',
    'safe_load_url', 'safe_torch_load', 'verify_checkpoint'
]
