"""k-NN top-1 of a frozen backbone (the package's k-NN, DINO's protocol).

Features are extracted by :class:`folk.evaluation.KNNEvaluator` (the class
behind the online :class:`folk.engine.KNNMonitorHook`) with the configs'
evaluation pipeline (resize + centre crop) and scored by
:func:`folk.evaluation.knn_top1`: k = 20 nearest training images by cosine
similarity, votes weighted by ``exp(sim / 0.07)``. Every backbone is read
with two poolings from one forward pass: the [CLS] token (``cls``) and the
mean of the patch tokens (``patch``). A variant that never trains the
[CLS] token (MFM, FOLK without distillation: their losses read the patch
tokens only) is measured fairly by the second.

Run alone on saved backbone weights (``pretrain.py``'s ``backbones.pth``)::

    python benchmarks/study/knn.py --preset smoke \\
        --weights work_dirs/study/folk_smoke/backbones.pth
"""
import functools
from typing import Dict, List, Optional, Tuple

import arrays
import builders
import common
import torch
import torch.nn as nn
from common import log
from sources import MEAN, NUM_CLASSES, STD, load_data

from folk.evaluation import KNNEvaluator, knn_top1

POOLINGS = ('cls', 'patch')

Features = Tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]


class BothPoolings(nn.Module):
    """A ViT whose output is its [CLS] token and its mean patch token,
    concatenated as a (B, 2C, 1, 1) map.

    :func:`folk.evaluation.global_features` average-pools a 4-D output, so
    the evaluator returns (B, 2C): ``[:, :C]`` the [CLS] token, ``[:, C:]``
    the patch mean (:func:`split_poolings`).
    """

    def __init__(self, vit: nn.Module) -> None:
        super().__init__()
        self.vit = vit

    def forward(self, images: torch.Tensor) -> Tuple[torch.Tensor]:
        tokens = self.vit(images)[-1]  # (B, 1 + N, C), out_type='raw'
        both = torch.cat([tokens[:, 0], tokens[:, 1:].mean(1)], dim=1)
        return (both[:, :, None, None], )


def split_poolings(features: Features) -> Dict[str, Features]:
    """``cls`` and ``patch`` features from those of :class:`BothPoolings`."""
    bank_f, bank_y, query_f, query_y = features
    c = bank_f.shape[1] // 2
    return dict(
        cls=(bank_f[:, :c], bank_y, query_f[:, :c], query_y),
        patch=(bank_f[:, c:], bank_y, query_f[:, c:], query_y))


def extract_features(weights: Dict[str, torch.Tensor], p: dict, data: dict,
                     device) -> Dict[str, Features]:
    """Features of the train (bank) and val (query) images, per pooling.

    Returns:
        dict[str, tuple]: ``cls`` / ``patch`` -> bank (N, C), bank labels
        (N,), queries (M, C), labels (M,).
    """
    from mmpretrain.models import SelfSupDataPreprocessor
    bank = arrays.register_arrays('bank', data['train']['images'],
                                  data['train']['labels'])
    query = arrays.register_arrays('query', data['val']['images'],
                                   data['val']['labels'])
    evaluator = KNNEvaluator(
        bank=dict(type='ArrayDataset', key=bank),
        query=dict(type='ArrayDataset', key=query),
        pipeline=arrays.eval_pipeline(p['img_size']),
        bank_per_class=p['knn_bank_per_class'],
        query_per_class=p['knn_query_per_class'],
        k=p['knn_k'],
        batch_size=p['eval_batch'],
        num_workers=0)
    backbone = BothPoolings(builders.build_backbone(p, weights, device))
    preprocessor = SelfSupDataPreprocessor(
        mean=MEAN, std=STD, to_rgb=True).to(device)
    preprocess = functools.partial(preprocessor, training=False)
    amp = None
    if device.type == 'cuda':
        amp = functools.partial(torch.autocast, 'cuda', dtype=torch.bfloat16)
    with _default_scope():
        bank_f, bank_y = evaluator.extract(backbone, preprocess, 'bank', amp)
        query_f, query_y = evaluator.extract(backbone, preprocess, 'query',
                                             amp)
    return split_poolings((bank_f, bank_y, query_f, query_y))


def _default_scope():
    from mmengine.registry import DefaultScope
    return DefaultScope.overwrite_default_scope('mmpretrain')


def knn_accuracy(features: Features, p: dict) -> float:
    """k-NN top-1 (fraction, not %) of extracted features."""
    bank_f, bank_y, query_f, query_y = features
    return knn_top1(
        bank_f,
        bank_y,
        query_f,
        query_y,
        num_classes=NUM_CLASSES,
        k=p['knn_k']) / 100.


def main(argv: Optional[List[str]] = None) -> Dict[str, Dict[str, float]]:
    parser = common.script_parser(__doc__, weights=True)
    args = parser.parse_args(argv)
    p, device = common.setup(parser, args)
    data = load_data(p, args.data)
    out = {}
    for name, weights in common.load_weights(args.weights).items():
        feats = extract_features(weights, p, data, device)
        out[name] = {pool: knn_accuracy(feats[pool], p) for pool in POOLINGS}
        log(f'k-NN top-1 of {name}: ' +
            ', '.join(f'{pool} {acc:.4f}' for pool, acc in out[name].items()))
    return out


if __name__ == '__main__':
    main()
