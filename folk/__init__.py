"""FOLK for OpenMMLab: frequency-guided masking + self-knowledge distillation.

Importing :mod:`folk` applies the compatibility fixes of :mod:`folk.compat`
and registers every FOLK module in MMPretrain's registries.
"""
from . import compat

compat.apply()

from . import datasets, engine, frequency, models  # noqa: E402,F401
from .version import __version__  # noqa: E402

__all__ = ['__version__', 'compat', 'datasets', 'engine', 'frequency',
           'models']
