"""Hooks that show whether pre-training learns: k-NN accuracy and collapse.

- :class:`KNNMonitorHook`: k-NN top-1 of the teacher's and the student's
  frozen features on a labelled train subset (bank) and a val subset
  (queries), every ``interval`` iterations and at the end of training.
- :class:`CollapseMonitorHook`: warns when the teacher of the
  self-distillation has collapsed to a uniform output or onto a few
  prototypes, from the entropies logged by :class:`DistillHead`.

Both are registered in MMPretrain's registry (which the configs use) and in
MMEngine's root registry (for configs of other scopes). See
``docs/monitoring.md``.
"""
import contextlib
import functools
import math
from typing import Dict, List, Optional, Sequence

import torch
from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper
from mmengine.optim import AmpOptimWrapper
from mmengine.registry import HOOKS as MMENGINE_HOOKS
from mmengine.runner.amp import autocast
from mmpretrain.registry import HOOKS

from ..evaluation import KNNEvaluator
from ..models.losses import DistillLoss

ENCODERS = ('teacher', 'student')


def _unwrap(model):
    return model.module if is_model_wrapper(model) else model


@contextlib.contextmanager
def evaluating(runner, encoders: Sequence[str]):
    """The model of ``runner`` in eval mode, for a monitor's pass.

    Yields ``(model, backbones, amp)``: the unwrapped model, its backbones
    named in ``encoders`` (``'teacher'``, ``'student'``) and the optim
    wrapper's autocast context (None without AMP). The pass runs eagerly,
    also with ``compile_backbone``: eval-mode, no-grad calls at other batch
    sizes would otherwise compile new graphs of the backbones (minutes) and
    count against dynamo's recompile limit. Training mode is restored.
    """
    model = _unwrap(runner.model)
    backbones = KNNMonitorHook.backbones(model)
    selected = {n: backbones[n] for n in encoders if n in backbones}
    optim_wrapper = getattr(runner, 'optim_wrapper', None)
    amp = None
    if isinstance(optim_wrapper, AmpOptimWrapper):
        amp = functools.partial(autocast, dtype=optim_wrapper.cast_dtype)
    was_training = model.training
    model.eval()
    try:
        with torch.compiler.set_stance('force_eager'):
            yield model, selected, amp
    finally:
        model.train(was_training)


@HOOKS.register_module()
@MMENGINE_HOOKS.register_module()
class KNNMonitorHook(Hook):
    """Online k-NN top-1 of the teacher's and the student's features.

    Every ``interval`` training iterations and after the last one, the
    backbones are put in eval mode and their global features ([CLS] token
    of a ViT, average-pooled map of a CNN) are extracted for a fixed,
    class-balanced labelled subset of the training set (the memory bank)
    and a subset of the validation set (the queries); each query is
    classified by a weighted vote of its ``k`` nearest bank features
    (cosine similarity, weight ``exp(sim / temperature)``, DINO's protocol;
    see :class:`folk.evaluation.KNNEvaluator`). The features of all
    processes are gathered; under :class:`AmpOptimWrapper` the backbones
    run in its ``cast_dtype``.

    The scores are written as scalars ``knn/teacher_top1`` and
    ``knn/student_top1`` (%) at step ``iteration`` to the visualizer
    (``vis_data/scalars.json``, TensorBoard, W&B, ...), kept in the message
    hub under the same names, and printed in the log. A model without an
    EMA teacher (MFM) gets the student's score only.

    Args:
        bank (dict): Dataset config of the memory bank (labelled training
            images), without ``pipeline``.
        query (dict): Dataset config of the queries (validation images).
        pipeline (list[dict]): Test pipeline, e.g. ``ResizeEdge`` +
            ``CenterCrop`` + ``PackInputs``.
        interval (int): Evaluate every ``interval`` iterations.
            Defaults to 5000.
        bank_per_class (int, optional): Bank images per class (None: all).
            Defaults to 20.
        query_per_class (int, optional): Queries per class (None: all).
            Defaults to 10.
        encoders (Sequence[str]): Which of ``'teacher'`` and ``'student'``
            to score. Defaults to both.
        k (int): Neighbours. Defaults to 20.
        temperature (float): Vote temperature. Defaults to 0.07.
        batch_size (int): Images per process and forward. Defaults to 64.
        num_workers (int): Data loader workers. Defaults to 2.
        seed (int): Seed of the subsets. Defaults to 0.
    """

    priority = 'NORMAL'

    def __init__(self,
                 bank: dict,
                 query: dict,
                 pipeline: List[dict],
                 interval: int = 5000,
                 bank_per_class: Optional[int] = 20,
                 query_per_class: Optional[int] = 10,
                 encoders: Sequence[str] = ENCODERS,
                 k: int = 20,
                 temperature: float = 0.07,
                 batch_size: int = 64,
                 num_workers: int = 2,
                 seed: int = 0) -> None:
        if interval < 1:
            raise ValueError(
                f'KNNMonitorHook: interval must be >= 1, got {interval}')
        bad = [e for e in encoders if e not in ENCODERS]
        if bad or not encoders:
            raise ValueError(f'KNNMonitorHook: encoders must be a non-empty '
                             f'subset of {ENCODERS}, got {list(encoders)}')
        self.interval = interval
        self.encoders = tuple(encoders)
        self.evaluator = KNNEvaluator(
            bank=bank,
            query=query,
            pipeline=pipeline,
            bank_per_class=bank_per_class,
            query_per_class=query_per_class,
            k=k,
            temperature=temperature,
            batch_size=batch_size,
            num_workers=num_workers,
            seed=seed)
        #: ``{'iter': ..., 'teacher_top1': ..., ...}`` of the last run
        self.last: Dict[str, float] = {}

    def before_train(self, runner) -> None:
        """Build the bank and query data sets (fails early on bad paths)."""
        self.evaluator.build()
        num_bank, num_query = self.evaluator.sizes()
        runner.logger.info(
            f'KNNMonitorHook: {num_bank} bank and {num_query} query images, '
            f'{self.evaluator.num_classes} classes, every {self.interval} '
            'iterations')

    def after_train_iter(self,
                         runner,
                         batch_idx: int,
                         data_batch=None,
                         outputs=None) -> None:
        if (self.every_n_train_iters(runner, self.interval)
                or self.is_last_train_iter(runner)):
            self.evaluate(runner)

    @staticmethod
    def backbones(model) -> Dict[str, torch.nn.Module]:
        """``{'teacher': ..., 'student': ...}`` backbones of a FOLK / MFM."""
        out = {'student': model.backbone}
        teacher = getattr(model, 'teacher', None)
        if teacher is not None:
            out['teacher'] = teacher.module.backbone
        return out

    def evaluate(self, runner) -> Dict[str, float]:
        """Score the encoders now; log and return the scores."""
        step = runner.iter + 1
        with evaluating(runner, self.encoders) as (model, selected, amp):
            preprocess = functools.partial(
                model.data_preprocessor, training=False)
            result = self.evaluator.evaluate_many(selected, preprocess, amp)
        scores = {f'knn/{n}_top1': v for n, v in result['top1'].items()}
        for key, value in scores.items():
            runner.message_hub.update_scalar(key, value)
        runner.visualizer.add_scalars(scores, step=step)
        text = ', '.join(f'{n} {v:.2f}' for n, v in result['top1'].items())
        runner.logger.info(f'k-NN top-1 (%) at iteration {step}: {text} (k='
                           f'{self.evaluator.k}, {result["num_bank"]} bank / '
                           f'{result["num_query"]} query images, '
                           f'{result["seconds"]:.1f} s)')
        scores['knn/seconds'] = result['seconds']
        self.last = dict(iter=step, **scores)
        return scores


@HOOKS.register_module()
@MMENGINE_HOOKS.register_module()
class CollapseMonitorHook(Hook):
    """Warn when the self-distillation teacher has collapsed.

    Reads ``teacher_entropy`` (mean per-sample entropy ``H(p)``) and
    ``teacher_marginal_entropy`` (entropy of the batch-mean distribution
    ``H(mean p)``), which :class:`DistillHead` returns beside the loss and
    MMEngine logs, every ``interval`` iterations, and warns (naming the
    iteration and the numbers) when

    - ``H(p) >= uniform_ratio * ln K``: the teacher's output is nearly
      uniform over the ``K`` prototypes for every image (collapse to
      uniform), or
    - ``exp(H(mean p)) < prototype_ratio * min(K, B)``: the images of a batch
      (``B`` per process) use only a few prototypes between them (collapse
      onto few prototypes). ``exp(H(mean p))`` is the effective number of
      prototypes in use; it cannot exceed about ``B`` for a sharp teacher,
      hence ``min(K, B)``.

    A collapsed teacher sits at the bound: ``H(p) = ln K`` (uniform) or
    ``exp(H(mean p))`` near 1 (one prototype). The defaults leave room for
    short, weakly trained runs: the demo config (200 iterations, K = 1024)
    stays between 0.78 and 0.91 ``ln K`` with several hundred prototypes in
    use (``docs/monitoring.md``).

    Args:
        interval (int): Check every ``interval`` iterations. Defaults to 50.
        uniform_ratio (float): Threshold of ``H(p) / ln K``.
            Defaults to 0.98.
        prototype_ratio (float): Threshold of
            ``exp(H(mean p)) / min(K, B)``. Defaults to 0.1.
    """

    priority = 'NORMAL'
    keys = ('teacher_entropy', 'teacher_marginal_entropy')

    def __init__(self,
                 interval: int = 50,
                 uniform_ratio: float = 0.98,
                 prototype_ratio: float = 0.1) -> None:
        if interval < 1:
            raise ValueError(
                f'CollapseMonitorHook: interval must be >= 1, got {interval}')
        if not 0 < uniform_ratio <= 1 or not 0 < prototype_ratio <= 1:
            raise ValueError('CollapseMonitorHook: uniform_ratio and '
                             'prototype_ratio must be in (0, 1], got '
                             f'{uniform_ratio} and {prototype_ratio}')
        self.interval = interval
        self.uniform_ratio = uniform_ratio
        self.prototype_ratio = prototype_ratio
        #: the last check: iteration, numbers and ``collapse`` (None,
        #: ``'uniform'`` or ``'few prototypes'``)
        self.last: Dict = {}
        self.num_checks = 0
        self._num_prototypes: Optional[int] = None
        self._warned_missing = False

    @staticmethod
    def num_prototypes(model) -> Optional[int]:
        """``K`` of the model's :class:`DistillLoss`, None without one."""
        for module in _unwrap(model).modules():
            if isinstance(module, DistillLoss):
                return int(module.center.shape[-1])
        return None

    def check(self, entropy: float, marginal: float, num_prototypes: int,
              batch_size: int) -> Optional[str]:
        """Which collapse (``'uniform'``, ``'few prototypes'``) or None."""
        if entropy >= self.uniform_ratio * math.log(num_prototypes):
            return 'uniform'
        if math.exp(marginal) < self.prototype_ratio * min(
                num_prototypes, batch_size):
            return 'few prototypes'
        return None

    def after_train_iter(self,
                         runner,
                         batch_idx: int,
                         data_batch=None,
                         outputs=None) -> None:
        if not self.every_n_train_iters(runner, self.interval):
            return
        if self._num_prototypes is None:
            self._num_prototypes = self.num_prototypes(runner.model) or 0
            if not self._num_prototypes:
                runner.logger.info('CollapseMonitorHook: the model has no '
                                   'DistillLoss (MFM?): nothing to check')
        if not self._num_prototypes:
            return
        outputs = outputs or {}
        if not all(k in outputs for k in self.keys):
            if not self._warned_missing:
                runner.logger.warning(
                    'CollapseMonitorHook: the model logs no '
                    f'{" / ".join(self.keys)}; the collapse check is off')
                self._warned_missing = True
            return
        num_prototypes = self._num_prototypes
        batch_size = getattr(runner.train_dataloader, 'batch_size', None)
        if not batch_size:
            return
        step = runner.iter + 1
        entropy = float(outputs['teacher_entropy'])
        marginal = float(outputs['teacher_marginal_entropy'])
        collapse = self.check(entropy, marginal, num_prototypes, batch_size)
        self.num_checks += 1
        self.last = dict(
            iter=step,
            teacher_entropy=entropy,
            teacher_marginal_entropy=marginal,
            collapse=collapse)
        if collapse is None:
            return
        log_k = math.log(num_prototypes)
        what = ('to a uniform output'
                if collapse == 'uniform' else 'onto few prototypes')
        runner.logger.warning(
            f'CollapseMonitorHook: the distillation teacher has collapsed '
            f'{what} at iteration {step}: mean per-sample entropy '
            f'{entropy:.3f} nats ({entropy / log_k:.1%} of ln K = '
            f'{log_k:.3f}), entropy of the batch-mean distribution '
            f'{marginal:.3f} nats (about '
            f'{math.exp(marginal):.1f} of K = {num_prototypes} prototypes '
            f'in use, batch {batch_size} per process). Thresholds: '
            f'uniform_ratio={self.uniform_ratio}, '
            f'prototype_ratio={self.prototype_ratio}.')
