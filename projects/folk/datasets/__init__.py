from .folder import (IMAGE_EXTENSIONS, ImageFolderDataset, TrainDataError,
                     check_train_data, list_images)
from .loading import ImageLoadError, LoadImageFromFileSafe
from .transforms import FOLKViews, RandomFrequencyFilter

__all__ = [
    'FOLKViews', 'IMAGE_EXTENSIONS', 'ImageFolderDataset', 'ImageLoadError',
    'LoadImageFromFileSafe', 'RandomFrequencyFilter', 'TrainDataError',
    'check_train_data', 'list_images'
]
