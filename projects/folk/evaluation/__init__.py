"""Evaluation of learned features (k-NN) and loading them for analysis."""
from .knn import (KNNEvaluator, class_balanced_indices, global_features,
                  knn_predict, knn_top1)
from .pretrained import build_model, load_pretrained_model

__all__ = [
    'KNNEvaluator', 'build_model', 'class_balanced_indices', 'global_features',
    'knn_predict', 'knn_top1', 'load_pretrained_model'
]
