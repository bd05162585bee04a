"""Per-epoch seeding of the augmentation stream, for exact epoch resumes.

MMEngine seeds each process once (``randomness.seed``) and each DataLoader
worker once, from ``seed + rank * num_workers + worker_id``. The iteration
loop resumes exactly because MMEngine replays the skipped batches through
the pipeline. The epoch loop does not replay: a resumed run starts the
random streams from the seed again, so the resumed epoch repeats the
crop, flip and frequency-filter draws of the first epoch, batch for batch,
and the continuation differs from an uninterrupted run.

:class:`EpochSeedHook` makes every draw of an epoch a function of
``(seed, epoch, rank, worker)``: at the start of each epoch the main
process is reseeded, and each DataLoader worker reseeds itself when it
loads its first sample of the epoch (also with ``persistent_workers``,
whose processes outlive the epoch: the epoch reaches them through a shared
integer). An uninterrupted run and a run resumed at an epoch boundary then
draw the same numbers.
"""
import multiprocessing
import random
from typing import Callable, List, Optional

import numpy as np
import torch
from mmengine.dist import get_rank
from mmengine.hooks import Hook
from mmengine.registry import HOOKS as MMENGINE_HOOKS
from mmengine.runner import EpochBasedTrainLoop
from mmpretrain.registry import HOOKS

MAIN_PROCESS = -1


def epoch_seed(seed: int, epoch: int, rank: int, worker: int) -> int:
    """A 32-bit seed for one process of one epoch.

    Args:
        seed (int): The run's seed.
        epoch (int): The epoch (0-based).
        rank (int): The process rank.
        worker (int): The DataLoader worker id, or :data:`MAIN_PROCESS`.

    Returns:
        int: The seed, in ``[0, 2**32)``.
    """
    entropy = [int(seed) % 2**32, int(epoch), int(rank), int(worker) + 1]
    return int(np.random.SeedSequence(entropy).generate_state(1)[0])


def seed_all(seed: int) -> None:
    """Seed Python's, NumPy's and torch's global generators."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


class EpochSeededPipeline:
    """A dataset pipeline that reseeds its DataLoader worker every epoch.

    In a worker, the first call after the shared epoch changed reseeds the
    worker with :func:`epoch_seed`; in the main process (``num_workers=0``)
    it does nothing (:class:`EpochSeedHook` reseeds the main process).

    Args:
        pipeline (callable): The dataset's pipeline.
        epoch: A shared integer (``multiprocessing.RawValue``) holding the
            current epoch.
        seed (int): The run's seed.
        rank (int): The process rank.
    """

    def __init__(self, pipeline: Callable, epoch, seed: int,
                 rank: int) -> None:
        self.pipeline = pipeline
        self.epoch = epoch
        self.seed = seed
        self.rank = rank
        self._seen: Optional[int] = None

    def __call__(self, results):
        info = torch.utils.data.get_worker_info()
        if info is not None:
            epoch = self.epoch.value
            if epoch != self._seen:
                self._seen = epoch
                seed_all(epoch_seed(self.seed, epoch, self.rank, info.id))
        return self.pipeline(results)

    def __getattr__(self, name):
        # transforms, __repr__ etc. of the wrapped Compose
        if name == 'pipeline':
            raise AttributeError(name)
        return getattr(self.pipeline, name)

    def __repr__(self) -> str:
        return f'EpochSeededPipeline({self.pipeline!r})'


def _pipelined_datasets(dataset) -> List[object]:
    """The datasets with a ``pipeline`` inside (dataset wrappers too)."""
    if hasattr(dataset, 'pipeline'):
        return [dataset]
    found = []
    for child in getattr(dataset, 'datasets', None) or []:
        found += _pipelined_datasets(child)
    inner = getattr(dataset, 'dataset', None)
    if inner is not None:
        found += _pipelined_datasets(inner)
    return found


def _register(cls):
    HOOKS.register_module(module=cls)
    if cls.__name__ not in MMENGINE_HOOKS.module_dict:
        MMENGINE_HOOKS.register_module(module=cls)
    return cls


@_register
class EpochSeedHook(Hook):
    """Reseed the augmentation stream from ``(seed, epoch, rank, worker)``.

    Active for MMEngine's ``EpochBasedTrainLoop`` only (the iteration loop
    is exact without it). Used by ``configs/_base_/default_runtime.py``.
    A resume from a checkpoint saved at an epoch boundary (``by_epoch``
    checkpoints) then continues exactly as the uninterrupted run; the draws
    still depend on the number of DataLoader workers and processes.
    """

    priority = 'VERY_HIGH'

    def __init__(self) -> None:
        self._epoch = None
        self._seed = 0
        self._rank = 0

    def before_train(self, runner) -> None:
        self._epoch = None
        if not isinstance(runner.train_loop, EpochBasedTrainLoop):
            return
        seed = runner.seed
        self._seed = int(seed) if seed is not None else 0
        self._rank = get_rank()
        self._epoch = multiprocessing.RawValue('q', -1)
        datasets = _pipelined_datasets(runner.train_dataloader.dataset)
        for dataset in datasets:
            pipeline = dataset.pipeline
            if isinstance(pipeline, EpochSeededPipeline):
                pipeline = pipeline.pipeline
            dataset.pipeline = EpochSeededPipeline(pipeline, self._epoch,
                                                   self._seed, self._rank)
        if not datasets:
            runner.logger.warning(
                'EpochSeedHook: the training dataset has no pipeline to '
                'reseed; DataLoader workers are not reseeded per epoch')

    def before_train_epoch(self, runner) -> None:
        if self._epoch is None:
            return
        self._epoch.value = runner.epoch
        seed_all(
            epoch_seed(self._seed, runner.epoch, self._rank, MAIN_PROCESS))


__all__ = [
    'EpochSeedHook', 'EpochSeededPipeline', 'epoch_seed', 'seed_all',
    'MAIN_PROCESS'
]
