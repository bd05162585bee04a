from .transforms import FOLKViews, RandomFrequencyFilter

__all__ = ['FOLKViews', 'RandomFrequencyFilter']
