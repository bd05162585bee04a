"""FOLK for OpenMMLab: frequency-guided masking + self-knowledge distillation.

Importing :mod:`folk` applies the compatibility fixes of :mod:`folk.compat`
and registers every FOLK module in the OpenMMLab registries (models,
datasets and transforms, hooks, the MMSeg optimizer constructor).
"""
from . import compat

compat.apply()

# registration: after the fixes (setup.cfg lets these imports follow code)
from . import (datasets, downstream, engine, evaluation, frequency, models,
               views)
from .version import __version__

__all__ = [
    '__version__', 'compat', 'datasets', 'downstream', 'engine', 'evaluation',
    'frequency', 'models', 'views'
]
