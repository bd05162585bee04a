"""A Runner hook that stops a fine-tune whose pre-trained weights did not
(fully) load."""
import os.path as osp
from typing import Optional, Sequence

from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper
from mmengine.registry import HOOKS
from mmengine.runner.checkpoint import CheckpointLoader

from ..engine.checkpoint import safe_torch_load
from .key_checks import check_loaded_keys, check_weights_equal


@HOOKS.register_module()
class PretrainedKeysCheckHook(Hook):
    """Fail early when pre-trained weights did not (fully) load.

    Before training, reads the checkpoint named in the module's ``init_cfg``
    (``type='Pretrained'``; MMSeg's ``model.pretrained`` ends up there too),
    runs :func:`folk.downstream.check_loaded_keys` (zero missing keys,
    except ``allow_missing``) and, unless the run resumes or uses
    ``load_from``, compares the module's weights with the file.

    Registered in MMEngine's root registry, so that configs of every scope
    (``mmpretrain``, ``mmseg``) find it.

    Args:
        module (str): Sub-module that received the weights. Defaults to
            ``'backbone'``.
        checkpoint (str, optional): File; defaults to ``init_cfg``'s.
        prefix (str, optional): Key prefix in the file; defaults to
            ``init_cfg``'s ``prefix`` (``''`` if none).
        allow_missing (Sequence[str]): See
            :func:`folk.downstream.check_loaded_keys`.
        check_values (bool): Also check that the values arrived. Defaults
            to True.
    """
    priority = 'VERY_HIGH'

    def __init__(self,
                 module: str = 'backbone',
                 checkpoint: Optional[str] = None,
                 prefix: Optional[str] = None,
                 allow_missing: Sequence[str] = (),
                 check_values: bool = True) -> None:
        self.module = module
        self.checkpoint = checkpoint
        self.prefix = prefix
        self.allow_missing = tuple(allow_missing)
        self.check_values = check_values

    def before_train(self, runner) -> None:
        """Check the keys (and values) of the pre-trained module.

        Raises:
            KeyError: If the file lacks weights of the module or has some
                of the wrong shape.
            RuntimeError: If the module does not hold the file's values.
        """
        model = runner.model
        if is_model_wrapper(model):
            model = model.module
        sub = model.get_submodule(self.module)
        init_cfg = getattr(sub, 'init_cfg', None) or {}
        if isinstance(init_cfg, (list, tuple)):
            init_cfg = next(
                (c for c in init_cfg if c.get('type') == 'Pretrained'), {})
        path = self.checkpoint or init_cfg.get('checkpoint')
        if not path:
            runner.logger.warning(
                f'PretrainedKeysCheckHook: {self.module} has no pre-trained '
                'checkpoint: training from scratch.')
            return
        prefix = self.prefix if self.prefix is not None else \
            init_cfg.get('prefix', '')
        if osp.isfile(path):
            ckpt = safe_torch_load(path)
        else:  # URL, remote storage: as the model loaded it
            ckpt = CheckpointLoader.load_checkpoint(path, map_location='cpu')
        result = check_loaded_keys(
            sub,
            ckpt,
            prefix=prefix,
            allow_missing=self.allow_missing,
            strict=False)
        runner.logger.info(
            f'PretrainedKeysCheckHook: {self.module} <- {path}: {result}')
        if not result.ok:
            raise KeyError(
                f'{path} does not fit model.{self.module}: {result}. '
                'Convert FOLK/MFM checkpoints with '
                'tools/model_converters/folk_to_*.py for the target library.')
        skip = runner._resume or runner._load_from
        if self.check_values and not skip:
            differ = check_weights_equal(sub, ckpt, prefix=prefix)
            if differ:
                raise RuntimeError(
                    f'model.{self.module} does not hold the weights of '
                    f'{path} ({len(differ)} tensors differ, e.g. '
                    f'{differ[:3]}): the pre-trained checkpoint was not '
                    'loaded (check init_cfg / pretrained).')


__all__ = ['PretrainedKeysCheckHook']
