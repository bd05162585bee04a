"""Linear probe on frozen [CLS] features.

The features are those of ``knn.py`` (evaluation pipeline, no
augmentation); a BatchNorm without affine parameters followed by a linear
layer is trained with AdamW and a cosine schedule (DINO / MAE use a
BatchNorm before the linear head; a few epochs on cached features instead
of LARS for 90 epochs on augmented crops).

Run alone::

    python benchmarks/study/linear.py --preset smoke \\
        --weights work_dirs/study/folk_smoke/backbones.pth
"""
import argparse
import math
from typing import Dict, List, Optional, Tuple

import common
import torch
import torch.nn as nn
import torch.nn.functional as F
from common import NUM_CLASSES, log


def linear_probe(features: Tuple[torch.Tensor, ...], p: dict,
                 seed: int) -> float:
    """Top-1 (fraction) on the queries of a probe trained on the bank."""
    train_f, train_y, val_f, val_y = features
    device = train_f.device
    g = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    head = nn.Sequential(
        nn.BatchNorm1d(train_f.shape[1], affine=False),
        nn.Linear(train_f.shape[1], NUM_CLASSES)).to(device)
    opt = torch.optim.AdamW(
        head.parameters(), lr=p['linear_lr'], weight_decay=1e-4)
    n = train_f.shape[0]
    bs = min(p['linear_batch'], n)
    steps = max(1, p['linear_epochs'] * (n // bs))
    it = 0
    for _ in range(p['linear_epochs']):
        perm = torch.randperm(n, generator=g).to(device)
        for b in range(n // bs):
            for group in opt.param_groups:  # cosine to zero
                group['lr'] = p['linear_lr'] * 0.5 * (
                    1 + math.cos(math.pi * it / steps))
            idx = perm[b * bs:(b + 1) * bs]
            loss = F.cross_entropy(head(train_f[idx]), train_y[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            it += 1
    head.eval()
    with torch.no_grad():
        return (head(val_f).argmax(1) == val_y).float().mean().item()


def main(argv: Optional[List[str]] = None) -> Dict[str, float]:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument(
        '--preset', default='cpu', choices=sorted(common.PRESETS))
    parser.add_argument('--weights', required=True)
    parser.add_argument('--data', default='auto')
    parser.add_argument('--device', default=None)
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--set', nargs='*', default=[], metavar='KEY=VALUE')
    args = parser.parse_args(argv)
    common.quiet_logging()
    from knn import extract_features
    from pretrain import load_data
    p = common.make_preset(args.preset, common.parse_set(args.set))
    device = torch.device(
        args.device or ('cuda' if torch.cuda.is_available() else 'cpu'))
    data = load_data(p, args.data)
    out = {}
    for name, weights in torch.load(args.weights).items():
        feats = extract_features(weights, p, data, device)
        out[name] = linear_probe(feats, p, args.seed)
        log(f'linear probe top-1 of {name}: {out[name]:.4f}')
    return out


if __name__ == '__main__':
    main()
