"""Alias of :mod:`folk.views.crop`, kept for imports of ``folk.crop``."""
from .views.crop import *  # noqa: F401,F403
from .views.crop import __all__  # noqa: F401
