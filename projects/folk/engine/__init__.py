"""Runner-level additions of FOLK: checkpoint files, hooks, device setup."""
from .checkpoint import (atomic_torch_save, atomic_write_text,
                         find_resumable_checkpoint, safe_load_url,
                         safe_torch_load, verify_checkpoint)
from .device import adapt_cfg_to_device
from .hooks import NonFiniteLossHook, SafeCheckpointHook
from .monitor_hooks import CollapseMonitorHook, KNNMonitorHook
from .resume_config import resume_config_changes
from .seeding import EpochSeedHook

__all__ = [
    'CollapseMonitorHook', 'EpochSeedHook', 'KNNMonitorHook',
    'NonFiniteLossHook', 'SafeCheckpointHook', 'adapt_cfg_to_device',
    'atomic_torch_save', 'atomic_write_text', 'find_resumable_checkpoint',
    'resume_config_changes', 'safe_load_url', 'safe_torch_load',
    'verify_checkpoint'
]
