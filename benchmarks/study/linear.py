"""Linear probe on frozen features ([CLS] token and mean patch token).

The features are those of ``knn.py`` (evaluation pipeline, no
augmentation, both poolings); a BatchNorm without affine parameters
followed by a linear layer is trained with AdamW and a cosine schedule
(DINO / MAE use a BatchNorm before the linear head; a few epochs on
cached features instead of LARS for 90 epochs on augmented crops).

Run alone::

    python benchmarks/study/linear.py --preset smoke \\
        --weights work_dirs/study/folk_smoke/backbones.pth
"""
import math
from typing import Dict, List, Optional, Tuple

import common
import torch
import torch.nn as nn
import torch.nn.functional as F
from common import log
from knn import POOLINGS, extract_features
from sources import NUM_CLASSES, load_data


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


def main(argv: Optional[List[str]] = None) -> Dict[str, Dict[str, float]]:
    parser = common.script_parser(__doc__, weights=True)
    args = parser.parse_args(argv)
    p, device = common.setup(parser, args)
    data = load_data(p, args.data)
    out = {}
    for name, weights in common.load_weights(args.weights).items():
        feats = extract_features(weights, p, data, device)
        out[name] = {
            pool: linear_probe(feats[pool], p, args.seed)
            for pool in POOLINGS
        }
        log(f'linear probe top-1 of {name}: ' +
            ', '.join(f'{pool} {acc:.4f}' for pool, acc in out[name].items()))
    return out


if __name__ == '__main__':
    main()
