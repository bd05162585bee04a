"""Record which pre-trained weights a downstream result comes from.

The converters (:func:`folk.downstream.convert_checkpoint`) write a
``folk_converter`` entry into the ``meta`` of every MMPretrain / MMSeg file:
the source checkpoint, FOLK or MFM, whether the EMA teacher or the student
was exported, and the pre-training epoch / iteration.
:class:`DownstreamProvenanceHook` reads it back and carries it through a
downstream run:

- before training, from the pre-trained file named in the module's
  ``init_cfg`` (MMSeg's ``model.pretrained`` ends up there too);
- into every checkpoint the run saves (``meta['folk_provenance']``), so a
  fine-tuned checkpoint keeps it;
- back from the checkpoint ``tools/test.py`` (or a resume) loads, with the
  name and iteration of that checkpoint (``Loaded checkpoint: ...``);
- into the log after every validation / test and into
  ``<log_dir>/downstream_results.json`` beside the metrics.
"""
import json
import os.path as osp
from typing import Dict, Optional

from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper
from mmengine.registry import HOOKS
from mmengine.runner.checkpoint import CheckpointLoader

from ..engine.checkpoint import atomic_write_text, safe_torch_load

META_KEY = 'folk_provenance'
RESULTS_FILE = 'downstream_results.json'


def _repo_relative(path: str) -> str:
    """``path`` relative to the working directory when it lies inside."""
    if not osp.isabs(path):
        return path
    rel = osp.relpath(path)
    return path if rel.startswith('..') else rel


def read_provenance(path: str) -> Dict[str, object]:
    """What a converted pre-trained file says about its origin.

    Args:
        path (str): A file written by ``tools/model_converters/
            folk_to_{mmpretrain,mmseg}.py`` (or a URL MMEngine can load).

    Returns:
        dict: ``pretrained`` (the file), and from its ``meta`` when it has
        one: ``source`` (file name of the pre-training checkpoint),
        ``method`` (FOLK / MFM), ``weights`` (teacher / student), ``arch``,
        ``format``, ``pretrain_epoch`` and ``pretrain_iter``. ``weights``
        is ``'unknown'`` for a file the converters did not write.
    """
    info: Dict[str, object] = dict(pretrained=_repo_relative(path))
    if osp.isfile(path):
        ckpt = safe_torch_load(path, mmap=True)
    else:  # URL, remote storage: as the model loaded it
        ckpt = CheckpointLoader.load_checkpoint(path, map_location='cpu')
    meta = ckpt.get('meta') if isinstance(ckpt, dict) else None
    converter = (meta or {}).get('folk_converter')
    if not isinstance(converter, dict):
        info['weights'] = 'unknown'
        return info
    for key in ('source', 'method', 'weights', 'arch', 'format'):
        if key in converter:
            info[key] = converter[key]
    for key in ('epoch', 'iter'):
        if key in meta:
            info[f'pretrain_{key}'] = meta[key]
    return info


def describe(info: Dict[str, object]) -> str:
    """One log line, e.g. ``FOLK teacher weights of epoch_300.pth ...``."""
    if info.get('weights') == 'unknown':
        return (f'{info["pretrained"]} (not written by folk_to_*.py: source '
                'and teacher / student unknown)')
    when = ', '.join(f'{k[len("pretrain_"):]} {info[k]}'
                     for k in ('pretrain_epoch', 'pretrain_iter') if k in info)
    return (f'{info.get("method", "?")} {info.get("weights", "?")} weights '
            f'of {info.get("source", "?")}'
            f'{" (" + when + ")" if when else ""} via {info["pretrained"]}')


@HOOKS.register_module()
class DownstreamProvenanceHook(Hook):
    """Log and save the source checkpoint and teacher / student of a run.

    Registered in MMEngine's root registry: configs of every scope
    (``mmpretrain``, ``mmseg``) find it.

    Args:
        module (str): Sub-module that receives the pre-trained weights.
            Defaults to ``'backbone'``.
        results_file (str): Name of the JSON file written in the run's log
            directory after each validation / test. Defaults to
            ``'downstream_results.json'``.
    """
    priority = 'VERY_LOW'

    def __init__(self,
                 module: str = 'backbone',
                 results_file: str = RESULTS_FILE) -> None:
        self.module = module
        self.results_file = results_file
        self.provenance: Optional[Dict[str, object]] = None
        self.evaluated: Optional[Dict[str, object]] = None
        self.results = []

    def _pretrained_path(self, runner) -> Optional[str]:
        model = runner.model
        if is_model_wrapper(model):
            model = model.module
        init_cfg = getattr(model.get_submodule(self.module), 'init_cfg',
                           None) or {}
        if isinstance(init_cfg, (list, tuple)):
            init_cfg = next(
                (c for c in init_cfg if c.get('type') == 'Pretrained'), {})
        return init_cfg.get('checkpoint')

    def before_train(self, runner) -> None:
        """Read the provenance of the pre-trained file and log it."""
        if self.provenance is not None:  # restored from a resumed checkpoint
            return
        path = self._pretrained_path(runner)
        if not path:
            self.provenance = dict(pretrained=None, weights='none')
            runner.logger.info(f'Pre-trained weights: none ({self.module} '
                               'trained from scratch)')
            return
        self.provenance = read_provenance(path)
        runner.logger.info(f'Pre-trained weights: {describe(self.provenance)}')

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        """Store the provenance in the checkpoint's ``meta``."""
        if self.provenance is not None:
            checkpoint.setdefault('meta', {})[META_KEY] = dict(self.provenance)

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        """Take the provenance and the name of a loaded checkpoint."""
        meta = checkpoint.get('meta') or {}
        info = meta.get(META_KEY)
        if isinstance(info, dict):
            self.provenance = dict(info)
        path = runner.cfg.get('load_from') or runner.cfg.get('resume_from')
        self.evaluated = dict(
            checkpoint=_repo_relative(path) if path else None,
            epoch=meta.get('epoch'),
            iter=meta.get('iter'))
        source = describe(self.provenance) if self.provenance else \
            'not recorded in this checkpoint'
        runner.logger.info(
            f'Loaded checkpoint: {self.evaluated["checkpoint"]} (epoch '
            f'{self.evaluated["epoch"]}, iter {self.evaluated["iter"]}); '
            f'pre-trained weights: {source}')

    def _record(self, runner, mode: str, metrics) -> None:
        evaluated = self.evaluated if mode == 'test' else dict(
            checkpoint=None, epoch=runner.epoch, iter=runner.iter)
        record = dict(
            mode=mode,
            metrics={
                k: v.item() if hasattr(v, 'item') else v
                for k, v in (metrics or {}).items()
            },
            evaluated=evaluated,
            pretrained=self.provenance)
        self.results.append(record)
        where = (evaluated or {}).get('checkpoint') or \
            f'the model at iter {runner.iter}'
        source = describe(self.provenance) if self.provenance else 'unknown'
        runner.logger.info(
            f'{mode} metrics of {where}; pre-trained weights: {source}')
        atomic_write_text(
            osp.join(runner.log_dir, self.results_file),
            json.dumps(self.results, indent=2, default=str) + '\n')

    def after_val_epoch(self, runner, metrics=None) -> None:
        self._record(runner, 'val', metrics)

    def after_test_epoch(self, runner, metrics=None) -> None:
        self._record(runner, 'test', metrics)


__all__ = ['DownstreamProvenanceHook', 'describe', 'read_provenance']
