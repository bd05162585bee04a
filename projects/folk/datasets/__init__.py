from .loading import ImageLoadError, LoadImageFromFileSafe
from .transforms import FOLKViews, RandomFrequencyFilter

__all__ = [
    'FOLKViews', 'ImageLoadError', 'LoadImageFromFileSafe',
    'RandomFrequencyFilter'
]
