from .distill_head import DistillHead
from .mfm_head import MFMHead

__all__ = ['DistillHead', 'MFMHead']
