from .folk import FOLK
from .mfm import MFM

__all__ = ['FOLK', 'MFM']
