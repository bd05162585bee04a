"""Runner-level additions (hooks) of FOLK."""
from .checkpoint import find_resumable_checkpoint, verify_checkpoint
from .hooks import NonFiniteLossHook, SafeCheckpointHook

__all__ = [
    'NonFiniteLossHook', 'SafeCheckpointHook', 'find_resumable_checkpoint',
    'verify_checkpoint'
]
