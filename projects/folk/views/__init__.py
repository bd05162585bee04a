"""FOLK's two views: the recipe, and its batched device implementation.

- :mod:`folk.views.recipe`: DINO's recipe (probabilities, ranges,
  constants), the worker-side draw, the parameter schemas and their array
  layouts, the MMCV / Pillow reference.
- :mod:`folk.views.crop`: resized crops and flips of a whole batch.
- :mod:`folk.views.photometric`: the photometric augmentation of a batch.
- :mod:`folk.views.collate`: the collate function that ships a batch as one
  uint8 tensor plus one parameter array per kind.
- :mod:`folk.views.transfer`: one host-to-device copy per step.
"""
from . import collate, crop, photometric, recipe, transfer

__all__ = ['collate', 'crop', 'photometric', 'recipe', 'transfer']
