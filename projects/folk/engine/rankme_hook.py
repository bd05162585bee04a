"""A label-free monitor of the representation: RankMe's effective rank.

RankMe (Garrido et al., "RankMe: Assessing the downstream performance of
pretrained self-supervised representations by their rank", ICML 2023):
for the ``(N, D)`` matrix ``Z`` of embeddings of ``N`` images with
singular values ``s_1 >= ... >= s_min(N, D)``,

    p_k = s_k / sum(s) + eps,    RankMe(Z) = exp(-sum_k p_k log p_k),

a smooth count of the directions the embeddings use, between 1 (all
images on one line: collapse) and ``min(N, D)``. It needs no labels, so it
runs on any training set. See ``docs/monitoring.md``.
"""
import contextlib
import functools
from typing import Dict, List, Optional, Sequence

import numpy as np
import torch
from mmengine.dataset import DefaultSampler, default_collate
from mmengine.dist import all_gather, get_world_size
from mmengine.hooks import Hook
from mmengine.registry import HOOKS as MMENGINE_HOOKS
from mmpretrain.registry import DATASETS, HOOKS
from torch.utils.data import DataLoader

from ..evaluation import global_features
from .monitor_hooks import evaluating

ENCODERS = ('teacher', 'student')


def effective_rank(features: torch.Tensor, eps: float = 1e-7) -> float:
    """RankMe of ``(N, D)`` features (float64 SVD, no centring)."""
    if features.ndim != 2 or min(features.shape) < 1:
        raise ValueError(f'effective_rank: expected a non-empty (N, D) '
                         f'matrix, got {tuple(features.shape)}')
    s = torch.linalg.svdvals(features.double())
    total = s.sum()
    if not torch.isfinite(total) or total <= 0:
        return 1.0
    p = s / total + eps
    return float(torch.exp(-(p * p.log()).sum()))


@HOOKS.register_module()
@MMENGINE_HOOKS.register_module()
class RankMeHook(Hook):
    """Effective rank (RankMe) of the encoders' embeddings on a fixed subset.

    Every ``interval`` iterations and after the last one, the global
    features ([CLS] token of a ViT, pooled map of a CNN) of the teacher's
    and / or the student's backbone, in eval mode, are extracted for a
    fixed subset of ``num_images`` images (drawn once with ``seed``) and
    their effective rank is logged as ``rankme/teacher`` and
    ``rankme/student`` (scalars at step ``iteration``, the message hub and
    the log). Unlike the k-NN monitor it needs no labels: by default the
    subset is taken from the training set itself (its dataset config with
    ``pipeline`` in place of the training pipeline).

    The rank is bounded by ``min(num_images, feature dims)``; a falling
    rank, or one near 1, says the embeddings collapse. With several
    processes each extracts its share and the features are gathered.

    Args:
        pipeline (list[dict]): Test pipeline (load, resize, centre crop,
            ``PackInputs``).
        dataset (dict, optional): Dataset config without ``pipeline``.
            Defaults to None (the training set).
        num_images (int): Images in the subset (all when the set is
            smaller). Defaults to 1024.
        interval (int): Evaluate every ``interval`` iterations.
            Defaults to 1000.
        encoders (Sequence[str]): Which of ``'teacher'`` and ``'student'``
            to score. Defaults to ``('teacher', 'student')``.
        batch_size (int): Images per process and forward. Defaults to 64.
        num_workers (int): Data loader workers. Defaults to 2.
        seed (int): Seed of the subset. Defaults to 0.
    """

    priority = 'NORMAL'

    def __init__(self,
                 pipeline: List[dict],
                 dataset: Optional[dict] = None,
                 num_images: int = 1024,
                 interval: int = 1000,
                 encoders: Sequence[str] = ENCODERS,
                 batch_size: int = 64,
                 num_workers: int = 2,
                 seed: int = 0) -> None:
        if interval < 1 or num_images < 2 or batch_size < 1:
            raise ValueError(
                'RankMeHook: interval and batch_size must be >= 1 and '
                f'num_images >= 2, got {interval}, {batch_size}, '
                f'{num_images}')
        bad = [e for e in encoders if e not in ENCODERS]
        if bad or not encoders:
            raise ValueError(f'RankMeHook: encoders must be a non-empty '
                             f'subset of {ENCODERS}, got {list(encoders)}')
        self.pipeline = pipeline
        self.dataset_cfg = dataset
        self.num_images = num_images
        self.interval = interval
        self.encoders = tuple(encoders)
        self.batch_size = batch_size
        self.num_workers = num_workers
        self.seed = seed
        self._loader: Optional[DataLoader] = None
        self._size = 0
        #: ``{'iter': ..., 'rankme/teacher': ..., ...}`` of the last run
        self.last: Dict[str, float] = {}

    def _build(self, runner) -> None:
        cfg = self.dataset_cfg
        if cfg is None:
            cfg = runner.cfg.train_dataloader.dataset
        cfg = dict(cfg)
        cfg['pipeline'] = self.pipeline
        # test_mode=False: a file the pipeline rejects (on_error='skip') is
        # replaced by another one, as in training
        cfg.setdefault('test_mode', False)
        dataset = DATASETS.build(cfg)
        n = len(dataset)
        rng = np.random.default_rng(self.seed)
        indices = np.sort(rng.permutation(n)[:min(n, self.num_images)])
        dataset.get_subset_([int(i) for i in indices])
        self._size = len(dataset)
        self._loader = DataLoader(
            dataset,
            batch_size=self.batch_size,
            sampler=DefaultSampler(dataset, shuffle=False, round_up=True),
            num_workers=self.num_workers,
            collate_fn=default_collate)

    def before_train(self, runner) -> None:
        """Build the subset (fails early on a bad dataset config)."""
        self._build(runner)
        runner.logger.info(
            f'RankMeHook: effective rank of the {"/".join(self.encoders)} '
            f'embeddings of {self._size} images, every {self.interval} '
            'iterations')

    def after_train_iter(self,
                         runner,
                         batch_idx: int,
                         data_batch=None,
                         outputs=None) -> None:
        if (self.every_n_train_iters(runner, self.interval)
                or self.is_last_train_iter(runner)):
            self.evaluate(runner)

    @torch.no_grad()
    def features(self, model, backbones: Dict[str, torch.nn.Module],
                 amp) -> Dict[str, torch.Tensor]:
        """``{name: (N, C)}`` features of the subset, each image once."""
        preprocess = functools.partial(model.data_preprocessor, training=False)
        feats = {name: [] for name in backbones}
        idx = []
        for data in self._loader:
            data = preprocess(data)
            ctx = amp() if amp else contextlib.nullcontext()
            with ctx:
                for name, backbone in backbones.items():
                    feats[name].append(
                        global_features(backbone, data['inputs']).float())
            idx.append(
                torch.tensor([s.sample_idx for s in data['data_samples']]))
        device = data['inputs'].device
        idx = torch.cat(idx).to(device)
        feats = {name: torch.cat(f) for name, f in feats.items()}
        if get_world_size() > 1:
            idx = torch.cat(all_gather(idx))
            feats = {n: torch.cat(all_gather(f)) for n, f in feats.items()}
        order = torch.argsort(idx, stable=True)
        first = torch.ones_like(order, dtype=torch.bool)
        first[1:] = idx[order][1:] != idx[order][:-1]
        order = order[first]
        return {name: f[order] for name, f in feats.items()}

    def evaluate(self, runner) -> Dict[str, float]:
        """Score the encoders now; log and return the ranks."""
        if self._loader is None:
            self._build(runner)
        with evaluating(runner, self.encoders) as (model, selected, amp):
            feats = self.features(model, selected, amp)
        step = runner.iter + 1
        scores = {
            f'rankme/{name}': effective_rank(f)
            for name, f in feats.items()
        }
        for key, value in scores.items():
            runner.message_hub.update_scalar(key, value)
        runner.visualizer.add_scalars(scores, step=step)
        some = next(iter(feats.values()))
        bound = min(some.shape)
        text = ', '.join(f'{k.split("/")[1]} {v:.1f}'
                         for k, v in scores.items())
        runner.logger.info(
            f'RankMe effective rank at iteration {step}: {text} (of at '
            f'most {bound} = min({some.shape[0]} images, {some.shape[1]} '
            f'dims))')
        self.last = dict(iter=step, **scores)
        return scores


__all__ = ['RankMeHook', 'effective_rank']
