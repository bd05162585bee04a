"""Downstream use of FOLK / MFM pre-training checkpoints.

- :mod:`.conversion`: checkpoint -> MMPretrain / MMSeg / timm backbone
  weights (``tools/model_converters/folk_to_*.py``);
- :mod:`.key_checks`: did a model receive every pre-trained weight?
- :mod:`.hooks`: :class:`PretrainedKeysCheckHook`, that check in the Runner;
- :mod:`.layer_decay`: :class:`ViTLayerDecayOptimizerConstructor`, layer-wise
  lr decay for MMSeg segmentors with a ViT backbone;
- :mod:`.linear_probe`: :class:`MultiBlockClsViT`, DINO's linear-probe
  features;
- :mod:`.provenance`: :class:`DownstreamProvenanceHook`, which records the
  source checkpoint and teacher / student of a downstream result.

``import folk`` imports this package, which registers the hook, the
backbone and the optimizer constructor.
"""
from .conversion import (FORMATS, WEIGHTS, ConversionReport,
                         NotAPretrainCheckpointError, cli_main,
                         convert_checkpoint, extract_backbone,
                         load_pretrain_state_dict, to_mmpretrain, to_mmseg,
                         to_timm)
from .hooks import PretrainedKeysCheckHook
from .key_checks import KeyCheck, check_loaded_keys, check_weights_equal
from .linear_probe import MultiBlockClsViT
from .provenance import DownstreamProvenanceHook

try:
    from .layer_decay import ViTLayerDecayOptimizerConstructor
except (ImportError, AssertionError):  # pragma: no cover
    # No (compatible) MMSeg, e.g. full mmcv >= 2.2 for classification only:
    # MMSeg 1.2.2 asserts mmcv < 2.2 when it is imported.
    ViTLayerDecayOptimizerConstructor = None

__all__ = [
    'FORMATS', 'WEIGHTS', 'ConversionReport', 'DownstreamProvenanceHook',
    'KeyCheck', 'MultiBlockClsViT', 'NotAPretrainCheckpointError',
    'PretrainedKeysCheckHook', 'ViTLayerDecayOptimizerConstructor',
    'check_loaded_keys', 'check_weights_equal', 'cli_main',
    'convert_checkpoint', 'extract_backbone', 'load_pretrain_state_dict',
    'to_mmpretrain', 'to_mmseg', 'to_timm'
]
