"""k-NN top-1 of a frozen backbone (the package's k-NN, DINO's protocol).

Features are extracted by :class:`folk.evaluation.KNNEvaluator` (the class
behind the online :class:`folk.engine.KNNMonitorHook`) with the configs'
evaluation pipeline (resize + centre crop) and scored by
:func:`folk.evaluation.knn_top1`: k = 20 nearest training images by cosine
similarity of the [CLS] token, votes weighted by ``exp(sim / 0.07)``.

Run alone on saved backbone weights (``pretrain.py``'s ``backbones.pth``)::

    python benchmarks/study/knn.py --preset smoke \\
        --weights work_dirs/study/folk_smoke/backbones.pth
"""
import argparse
import functools
from typing import Dict, List, Optional, Tuple

import common
import torch
from common import MEAN, NUM_CLASSES, STD, log

from folk.evaluation import KNNEvaluator, knn_top1


def extract_features(weights: Dict[str, torch.Tensor], p: dict, data: dict,
                     device) -> Tuple[torch.Tensor, ...]:
    """[CLS] features of the train (bank) and val (query) images.

    Returns:
        tuple: bank (N, C), bank labels (N,), queries (M, C), labels (M,).
    """
    from mmpretrain.models import SelfSupDataPreprocessor
    bank = common.register_arrays('bank', data['train']['images'],
                                  data['train']['labels'])
    query = common.register_arrays('query', data['val']['images'],
                                   data['val']['labels'])
    evaluator = KNNEvaluator(
        bank=dict(type='ArrayDataset', key=bank),
        query=dict(type='ArrayDataset', key=query),
        pipeline=common.eval_pipeline(p['img_size']),
        bank_per_class=p['knn_bank_per_class'],
        query_per_class=p['knn_query_per_class'],
        k=p['knn_k'],
        batch_size=p['eval_batch'],
        num_workers=0)
    backbone = common.build_backbone(p, weights, device)
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
    return bank_f, bank_y, query_f, query_y


def _default_scope():
    from mmengine.registry import DefaultScope
    return DefaultScope.overwrite_default_scope('mmpretrain')


def knn_accuracy(features: Tuple[torch.Tensor, ...], p: dict) -> float:
    """k-NN top-1 (fraction, not %) of extracted features."""
    bank_f, bank_y, query_f, query_y = features
    return knn_top1(
        bank_f,
        bank_y,
        query_f,
        query_y,
        num_classes=NUM_CLASSES,
        k=p['knn_k']) / 100.


def main(argv: Optional[List[str]] = None) -> Dict[str, float]:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument(
        '--preset', default='cpu', choices=sorted(common.PRESETS))
    parser.add_argument(
        '--weights',
        required=True,
        help='backbones.pth written by pretrain.py')
    parser.add_argument('--data', default='auto')
    parser.add_argument('--device', default=None)
    parser.add_argument('--set', nargs='*', default=[], metavar='KEY=VALUE')
    args = parser.parse_args(argv)
    common.quiet_logging()
    from pretrain import load_data
    p = common.make_preset(args.preset, common.parse_set(args.set))
    device = torch.device(
        args.device or ('cuda' if torch.cuda.is_available() else 'cpu'))
    data = load_data(p, args.data)
    out = {}
    for name, weights in torch.load(args.weights).items():
        out[name] = knn_accuracy(extract_features(weights, p, data, device), p)
        log(f'k-NN top-1 of {name}: {out[name]:.4f}')
    return out


if __name__ == '__main__':
    main()
