from .algorithms import *  # noqa: F401,F403
from .data_preprocessor import FrequencyFilterPreprocessor
from .heads import *  # noqa: F401,F403
from .losses import *  # noqa: F401,F403
from .necks import *  # noqa: F401,F403
from .teacher_ema import FusedCosineEMA

__all__ = ['FrequencyFilterPreprocessor', 'FusedCosineEMA']
