"""Runner-level additions of FOLK: checkpoints, hooks, optimizer wrappers."""
from .checkpoint import (atomic_torch_save, atomic_write_text,
                         find_resumable_checkpoint, safe_load_url,
                         safe_torch_load, verify_checkpoint)
from .device import adapt_cfg_to_device
from .fsdp import folk_fsdp_wrap_policy
from .hooks import NonFiniteLossHook, SafeCheckpointHook
from .monitor_hooks import CollapseMonitorHook, KNNMonitorHook
from .optim_wrapper import SyncFreeAmpOptimWrapper, SyncFreeOptimWrapper
from .rankme_hook import RankMeHook, effective_rank
from .resume_config import resume_config_changes
from .runtime_info import DeferredRuntimeInfoHook
from .seeding import EpochSeedHook
from .train_checks import drop_disabled_hooks, prepare_train_cfg

__all__ = [
    'CollapseMonitorHook', 'DeferredRuntimeInfoHook', 'EpochSeedHook',
    'KNNMonitorHook', 'NonFiniteLossHook', 'RankMeHook', 'SafeCheckpointHook',
    'SyncFreeAmpOptimWrapper', 'SyncFreeOptimWrapper', 'adapt_cfg_to_device',
    'atomic_torch_save', 'atomic_write_text', 'drop_disabled_hooks',
    'effective_rank', 'find_resumable_checkpoint', 'prepare_train_cfg',
    'resume_config_changes', 'safe_load_url', 'safe_torch_load',
    'verify_checkpoint'
]
