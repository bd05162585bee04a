"""Weighted k-NN classification of frozen features (DINO's k-NN protocol).

- :func:`knn_predict` / :func:`knn_top1`: the metric. Every query takes the
  ``k`` bank features of highest cosine similarity; neighbour ``i`` votes
  for its label with weight ``exp(sim_i / T)`` and the class with the
  largest sum wins (Wu et al., 2018; Caron et al., DINO, 2021: ``k = 20``,
  ``T = 0.07``). Pure PyTorch, chunked over queries and over the bank, so
  the similarity matrix is never held whole.
- :func:`class_balanced_indices`: a fixed, class-balanced subset.
- :class:`KNNEvaluator`: builds the bank (labelled train subset) and query
  (val subset) data loaders through MMPretrain's registries, extracts the
  global feature of a backbone ([CLS] token of a ViT, average-pooled map of
  a CNN) on every process, gathers the features and scores them. Used by
  :class:`folk.engine.KNNMonitorHook` during pre-training and by
  ``tools/analysis_tools/knn_eval.py`` after it, so both give the same
  number for the same weights.
"""
import contextlib
import copy
import os.path as osp
import time
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from mmengine.dist import all_gather, get_world_size

from ..models.algorithms.mfm import split_features


def knn_predict(bank: torch.Tensor,
                bank_labels: torch.Tensor,
                queries: torch.Tensor,
                num_classes: int,
                k: int = 20,
                temperature: float = 0.07,
                query_chunk: int = 1024,
                bank_chunk: int = 65536) -> torch.Tensor:
    """Class scores of a weighted k-NN vote.

    Args:
        bank (Tensor): (N, C) features of the memory bank.
        bank_labels (Tensor): (N, ) integer labels in ``[0, num_classes)``.
        queries (Tensor): (M, C) features to classify.
        num_classes (int): Number of classes.
        k (int): Neighbours per query (at most N are used). Defaults to 20.
        temperature (float): Vote weight ``exp(sim / temperature)``.
            Defaults to 0.07.
        query_chunk (int): Queries scored at once. Defaults to 1024.
        bank_chunk (int): Bank rows compared at once; the running top-k is
            merged across chunks. Defaults to 65536.

    Returns:
        Tensor: (M, num_classes) float32 vote sums, on the queries' device.
    """
    if bank.dim() != 2 or queries.dim() != 2 or \
            bank.shape[1] != queries.shape[1]:
        raise ValueError('knn_predict: bank and queries must be (N, C) and '
                         f'(M, C), got {tuple(bank.shape)} and '
                         f'{tuple(queries.shape)}')
    if bank_labels.shape != (bank.shape[0], ):
        raise ValueError(f'knn_predict: bank_labels must be ({bank.shape[0]},'
                         f'), got {tuple(bank_labels.shape)}')
    if k < 1 or temperature <= 0:
        raise ValueError('knn_predict: need k >= 1 and temperature > 0, got '
                         f'k={k}, temperature={temperature}')
    if len(bank_labels) and (bank_labels.min() < 0
                             or bank_labels.max() >= num_classes):
        raise ValueError(f'knn_predict: labels must lie in [0, {num_classes})')
    device = queries.device
    bank = F.normalize(bank.float(), dim=1).to(device)
    labels = bank_labels.long().to(device)
    queries = F.normalize(queries.float(), dim=1)
    k = min(k, bank.shape[0])
    scores = []
    for q in queries.split(query_chunk):  # (m, C)
        top_sim = top_idx = None
        for start in range(0, bank.shape[0], bank_chunk):
            sim = q @ bank[start:start + bank_chunk].T  # (m, n)
            s, i = sim.topk(min(k, sim.shape[1]), dim=1)  # (m, k)
            i = i + start
            if top_sim is not None:
                s, j = torch.cat([top_sim, s], dim=1).topk(k, dim=1)
                i = torch.cat([top_idx, i], dim=1).gather(1, j)
            top_sim, top_idx = s, i
        weight = (top_sim / temperature).exp()  # (m, k)
        votes = torch.zeros(q.shape[0], num_classes, device=device)
        votes.scatter_add_(1, labels[top_idx], weight)  # (m, num_classes)
        scores.append(votes)
    return torch.cat(scores) if scores else torch.zeros(0, num_classes)


def knn_top1(bank: torch.Tensor,
             bank_labels: torch.Tensor,
             queries: torch.Tensor,
             query_labels: torch.Tensor,
             num_classes: Optional[int] = None,
             **kwargs) -> float:
    """Top-1 accuracy (%) of :func:`knn_predict`.

    Args:
        bank, bank_labels, queries: As :func:`knn_predict`.
        query_labels (Tensor): (M, ) true labels of the queries.
        num_classes (int, optional): Defaults to ``1 + max label``.
        **kwargs: ``k``, ``temperature``, chunk sizes of
            :func:`knn_predict`.

    Returns:
        float: Percentage of queries whose vote winner is their label.
    """
    if query_labels.shape != (queries.shape[0], ):
        raise ValueError(f'knn_top1: query_labels must be ({queries.shape[0]}'
                         f',), got {tuple(query_labels.shape)}')
    if queries.shape[0] == 0:
        raise ValueError('knn_top1: no queries')
    if num_classes is None:
        num_classes = int(max(bank_labels.max(), query_labels.max())) + 1
    scores = knn_predict(bank, bank_labels, queries, num_classes, **kwargs)
    pred = scores.argmax(dim=1)
    correct = (pred == query_labels.to(pred.device).long()).float().mean()
    return 100. * float(correct)


def class_balanced_indices(labels: Sequence[int],
                           per_class: Optional[int],
                           seed: int = 0) -> List[int]:
    """A fixed subset with at most ``per_class`` samples of every class.

    The same labels and seed give the same subset on every process and in
    every run. ``per_class=None`` keeps everything.

    Args:
        labels (Sequence[int]): Label of every sample.
        per_class (int, optional): Samples kept per class.
        seed (int): Seed of the draw. Defaults to 0.

    Returns:
        list[int]: Sorted indices into ``labels``.
    """
    labels = np.asarray(labels)
    if per_class is None:
        return list(range(len(labels)))
    if per_class < 1:
        raise ValueError(f'per_class must be >= 1 or None, got {per_class}')
    rng = np.random.default_rng(seed)
    keep = []
    for cls in np.unique(labels):
        members = np.flatnonzero(labels == cls)
        if len(members) > per_class:
            members = rng.choice(members, per_class, replace=False)
        keep.extend(members.tolist())
    return sorted(keep)


def global_features(backbone: nn.Module, images: torch.Tensor) -> torch.Tensor:
    """(N, C) global feature: ViT [CLS] token or pooled CNN map."""
    feat = backbone(images)[-1]
    return split_features(feat, images.shape[-2:])[0]


_SAFE_LOADER_ARGS = {
    'to_float32': None,
    'color_type': 'color',
    'imdecode_backend': 'cv2',
    'backend_args': None,
}


def safe_loading_pipeline(pipeline: Sequence[dict]) -> List[dict]:
    """A copy of ``pipeline`` that loads images with
    ``LoadImageFromFileSafe``.

    mmcv's ``LoadImageFromFile`` fails on a bad file with an OpenCV error
    that names no file; ``LoadImageFromFileSafe`` decodes the same way
    (OpenCV, ``IMREAD_COLOR``) and raises ``ImageLoadError`` naming the
    file and the reason. Loaders with other options are kept.
    """
    out = copy.deepcopy(list(pipeline))
    for step in out:
        if not isinstance(step, dict) or step.get('type') not in (
                'LoadImageFromFile', 'mmpretrain.LoadImageFromFile'):
            continue
        options = {k: v for k, v in step.items() if k != 'type'}
        if all(k in _SAFE_LOADER_ARGS and _SAFE_LOADER_ARGS[k] in (None, v)
               for k, v in options.items()):
            step['type'] = 'LoadImageFromFileSafe'
    return out


def check_image_files(dataset, cfg: dict) -> None:
    """Refuse missing or empty local image files of a k-NN subset.

    Checked when the monitor is built (before the first iteration), by
    file size only: a bad bank file would otherwise stop training at the
    first evaluation, before that iteration's checkpoint, and again after
    every re-run.

    Raises:
        ValueError: Naming up to five bad files and the dataset.
    """
    bad = []
    for i in range(len(dataset)):
        path = dataset.get_data_info(i).get('img_path')
        if not isinstance(path, str) or '://' in path:
            continue
        if not osp.isfile(path):
            bad.append(f'{path} (missing)')
        elif osp.getsize(path) == 0:
            bad.append(f'{path} (empty file)')
    if bad:
        source = cfg.get('ann_file') or cfg.get('data_root')
        raise ValueError(
            f'KNNEvaluator: {len(bad)} image file(s) of the k-NN set '
            f'{source!r} cannot be used: ' + '; '.join(bad[:5]) +
            (' ...' if len(bad) > 5 else '') +
            '. Fix or remove them from the list (the k-NN monitor runs '
            'before the checkpoint of its iteration).')


class KNNEvaluator:
    """k-NN top-1 of frozen backbone features on a labelled bank / query set.

    The two data sets are built through MMPretrain's ``DATASETS`` registry
    with ``pipeline`` (e.g. resize + centre crop + ``PackInputs``), reduced
    to fixed class-balanced subsets (:func:`class_balanced_indices`), and
    read by MMEngine data loaders with a non-shuffling ``DefaultSampler``,
    so with several processes each reads its share. Features of all
    processes are gathered (``mmengine.dist.all_gather``) and every process
    computes the same score.

    Args:
        bank (dict): Dataset config of the memory bank (labelled train
            images), without ``pipeline``.
        query (dict): Dataset config of the queries (val images).
        pipeline (list[dict]): Test pipeline of both.
        bank_per_class (int, optional): Bank images per class; None = all.
        query_per_class (int, optional): Queries per class; None = all.
        k (int): Neighbours. Defaults to 20.
        temperature (float): Vote temperature. Defaults to 0.07.
        batch_size (int): Images per process and forward. Defaults to 64.
        num_workers (int): Data loader workers. Defaults to 2.
        seed (int): Seed of the subsets. Defaults to 0.
    """

    def __init__(self,
                 bank: dict,
                 query: dict,
                 pipeline: List[dict],
                 bank_per_class: Optional[int] = None,
                 query_per_class: Optional[int] = None,
                 k: int = 20,
                 temperature: float = 0.07,
                 batch_size: int = 64,
                 num_workers: int = 2,
                 seed: int = 0) -> None:
        for name, cfg in (('bank', bank), ('query', query)):
            if not isinstance(cfg, dict) or 'type' not in cfg:
                raise ValueError(f'KNNEvaluator: {name} must be a dataset '
                                 f'config dict with a "type", got {cfg!r}')
        if k < 1 or temperature <= 0 or batch_size < 1:
            raise ValueError('KNNEvaluator: need k >= 1, temperature > 0 and '
                             f'batch_size >= 1, got k={k}, temperature='
                             f'{temperature}, batch_size={batch_size}')
        self.bank_cfg = dict(bank)
        self.query_cfg = dict(query)
        self.pipeline = list(pipeline)
        self.bank_per_class = bank_per_class
        self.query_per_class = query_per_class
        self.k = k
        self.temperature = temperature
        self.batch_size = batch_size
        self.num_workers = num_workers
        self.seed = seed
        self._loaders: Optional[Dict[str, object]] = None
        self.num_classes: Optional[int] = None

    def _dataset(self, cfg: dict, per_class: Optional[int]):
        from mmpretrain.registry import DATASETS
        cfg = copy.deepcopy(cfg)
        cfg['pipeline'] = safe_loading_pipeline(self.pipeline)
        dataset = DATASETS.build(cfg)
        if hasattr(dataset, 'full_init'):
            dataset.full_init()
        labels = dataset.get_gt_labels()
        if labels is None or len(labels) == 0:
            raise ValueError(f'KNNEvaluator: the dataset {cfg} has no labels '
                             '(k-NN needs labelled images)')
        indices = class_balanced_indices(labels, per_class, self.seed)
        # In place, not ``get_subset``: mmengine 0.10's copy behind it
        # (``BaseDataset._copy_without_annotation``) deep-copies through a
        # memo dict that is a mutable default argument, shared by every call
        # in the process and keyed by ``id()``; once a copied object is
        # freed, a new object at the same address is "copied" as the stale
        # one (a bank pipeline that held a data set of an earlier run).
        dataset.get_subset_(indices)
        check_image_files(dataset, cfg)
        return dataset, int(np.max(labels)) + 1

    def build(self) -> None:
        """Build the two data sets and loaders (once)."""
        if self._loaders is not None:
            return
        from mmengine.runner import Runner
        loaders = {}
        num_classes = 0
        for name, cfg, per_class in (('bank', self.bank_cfg,
                                      self.bank_per_class),
                                     ('query', self.query_cfg,
                                      self.query_per_class)):
            dataset, n = self._dataset(cfg, per_class)
            num_classes = max(num_classes, n)
            loaders[name] = Runner.build_dataloader(
                dict(
                    batch_size=self.batch_size,
                    num_workers=self.num_workers,
                    persistent_workers=False,
                    sampler=dict(
                        type='DefaultSampler', shuffle=False, round_up=True),
                    collate_fn=dict(type='default_collate'),
                    dataset=dataset))
        self._loaders = loaders
        self.num_classes = num_classes

    def sizes(self) -> Tuple[int, int]:
        """Number of (bank, query) images."""
        self.build()
        return (len(self._loaders['bank'].dataset),
                len(self._loaders['query'].dataset))

    @torch.no_grad()
    def extract_many(
        self,
        backbones: Dict[str, nn.Module],
        preprocess: Callable[[dict], dict],
        split: str,
        autocast: Optional[Callable[[], object]] = None
    ) -> Dict[str, Tuple[torch.Tensor, torch.Tensor]]:
        """Features and labels of a split, gathered over processes.

        One pass over the data feeds every backbone (the images are read
        once).

        Args:
            backbones (dict[str, nn.Module]): Backbones in eval mode.
            preprocess (callable): ``data -> dict(inputs=...)``, e.g. the
                model's data preprocessor with ``training=False``.
            split (str): ``'bank'`` or ``'query'``.
            autocast (callable, optional): Returns the context to run the
                backbones under (mixed precision).

        Returns:
            dict[str, tuple[Tensor, Tensor]]: Per backbone, (N, C) float32
            features and (N, ) labels, in data set order, each image once.
        """
        self.build()
        feats = {name: [] for name in backbones}
        labels, idx = [], []
        for data in self._loaders[split]:
            data = preprocess(data)
            with (autocast() if autocast else contextlib.nullcontext()):
                for name, backbone in backbones.items():
                    f = global_features(backbone, data['inputs'])  # (B, C)
                    feats[name].append(f.float())
            samples = data['data_samples']
            labels.append(torch.cat([s.gt_label for s in samples]))
            idx.append(torch.tensor([s.sample_idx for s in samples]))
        device = data['inputs'].device
        labels = torch.cat(labels).to(device)
        idx = torch.cat(idx).to(device)
        feats = {name: torch.cat(f) for name, f in feats.items()}  # (n, C)
        if get_world_size() > 1:
            # DefaultSampler(round_up=True): the same count on every rank
            labels = torch.cat(all_gather(labels))
            idx = torch.cat(all_gather(idx))
            feats = {
                name: torch.cat(all_gather(f))
                for name, f in feats.items()
            }
        # drop the sampler's padding: each index once, in data set order
        order = torch.argsort(idx, stable=True)
        idx = idx[order]
        first = torch.ones_like(idx, dtype=torch.bool)
        first[1:] = idx[1:] != idx[:-1]
        order = order[first]
        return {name: (f[order], labels[order]) for name, f in feats.items()}

    def extract(
        self,
        backbone: nn.Module,
        preprocess: Callable[[dict], dict],
        split: str,
        autocast: Optional[Callable[[], object]] = None
    ) -> Tuple[torch.Tensor, torch.Tensor]:
        """:meth:`extract_many` for one backbone."""
        return self.extract_many({'x': backbone}, preprocess, split,
                                 autocast)['x']

    def evaluate_many(self,
                      backbones: Dict[str, nn.Module],
                      preprocess: Callable[[dict], dict],
                      autocast: Optional[Callable[[], object]] = None) -> Dict:
        """k-NN top-1 of every backbone, from one pass over the images.

        Args: as :meth:`extract_many`.

        Returns:
            dict: ``top1`` (dict: name -> %), ``num_bank``, ``num_query``
            and ``seconds`` (wall time of this call).
        """
        start = time.perf_counter()
        bank = self.extract_many(backbones, preprocess, 'bank', autocast)
        query = self.extract_many(backbones, preprocess, 'query', autocast)
        top1 = {
            name:
            knn_top1(
                *bank[name],
                *query[name],
                num_classes=self.num_classes,
                k=self.k,
                temperature=self.temperature)
            for name in backbones
        }
        name = next(iter(backbones))
        return dict(
            top1=top1,
            num_bank=len(bank[name][0]),
            num_query=len(query[name][0]),
            seconds=time.perf_counter() - start)

    def evaluate(self,
                 backbone: nn.Module,
                 preprocess: Callable[[dict], dict],
                 autocast: Optional[Callable[[], object]] = None) -> Dict:
        """k-NN top-1 of one backbone.

        Args: as :meth:`extract`.

        Returns:
            dict: ``top1`` (%), ``num_bank``, ``num_query`` and ``seconds``.
        """
        result = self.evaluate_many({'x': backbone}, preprocess, autocast)
        return dict(result, top1=result['top1']['x'])
