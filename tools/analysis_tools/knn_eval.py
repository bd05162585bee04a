"""k-NN top-1 of a checkpoint's frozen features (offline, as during training).

Scores a backbone with the ``KNNMonitorHook`` settings of CONFIG (same bank
and query subsets, pipeline, ``k`` and temperature; see
``docs/monitoring.md``), so the number equals the one the hook logged for
the same weights. CHECKPOINT may be

- a FOLK / MFM pre-training checkpoint (``tools/train.py``): the EMA
  teacher's backbone of a FOLK checkpoint and the student's of an MFM one
  by default (``--weights``);
- a converted MMPretrain backbone (``tools/model_converters/
  folk_to_mmpretrain.py``, keys ``backbone.*``).

The backbone runs in the autocast dtype the hook uses during training on the
same device (:func:`monitor_dtype`: bf16 for the ImageNet configs on a GPU,
float32 on a CPU); the result records it (``amp_dtype``).

Usage::

    python tools/analysis_tools/knn_eval.py CONFIG CHECKPOINT \
        [--weights teacher|student] [--out result.json] \
        [--cfg-options custom_hooks.1.query_per_class=50 ...]
"""
import argparse
import json
import os.path as osp
from functools import partial
from typing import Dict, Mapping, Optional, Sequence, Tuple

import torch
from mmengine.config import Config, DictAction
from mmengine.registry import DefaultScope

import folk  # noqa: F401  (registers FOLK's modules)
from folk.downstream import (NotAPretrainCheckpointError, extract_backbone,
                             load_pretrain_state_dict)
from folk.engine.checkpoint import safe_torch_load
from folk.engine.device import adapt_cfg_to_device
from folk.evaluation import build_model

BACKBONE_PREFIX = 'backbone.'


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description='k-NN top-1 of a FOLK / MFM checkpoint or a converted '
        'MMPretrain backbone, with the KNNMonitorHook settings of a config.')
    parser.add_argument(
        'config',
        help='pre-training config with a '
        'KNNMonitorHook in custom_hooks')
    parser.add_argument('checkpoint', help='checkpoint file')
    parser.add_argument(
        '--weights',
        choices=('teacher', 'student'),
        default=None,
        help='backbone of a pre-training checkpoint (default: teacher for '
        'FOLK, student for MFM)')
    parser.add_argument(
        '--device',
        default=None,
        help='cpu or cuda (default: cuda if available)')
    parser.add_argument(
        '--out', default=None, help='also write the result to this JSON file')
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        action=DictAction,
        help='override config settings (key=value)')
    return parser.parse_args(argv)


def knn_hook_cfg(cfg: Config, config_path: str = 'the config') -> dict:
    """The ``KNNMonitorHook`` entry of ``cfg.custom_hooks``."""
    hooks = [
        h for h in cfg.get('custom_hooks', [])
        if h.get('type') == 'KNNMonitorHook'
    ]
    if not hooks:
        raise KeyError(
            f'{config_path} has no KNNMonitorHook in custom_hooks: add one '
            '(see docs/monitoring.md) to say which bank and query images to '
            'use')
    return dict(hooks[0])


def load_backbone_weights(
        path: str,
        weights: Optional[str] = None
) -> Tuple['Mapping[str, torch.Tensor]', str]:
    """Backbone state dict (MMPretrain key names) and a description.

    Args:
        path (str): Pre-training checkpoint or converted MMPretrain backbone.
        weights (str, optional): ``'teacher'`` / ``'student'`` for a
            pre-training checkpoint.

    Returns:
        tuple[dict, str]: The weights and e.g. ``'FOLK teacher'``.
    """
    try:
        state_dict, _ = load_pretrain_state_dict(path)
    except NotAPretrainCheckpointError:
        ckpt = safe_torch_load(path)
        state_dict = ckpt.get('state_dict', ckpt) if isinstance(
            ckpt, Mapping) else None
        keys = [k for k in (state_dict or {}) if isinstance(k, str)]
        if not keys or not all(k.startswith(BACKBONE_PREFIX) for k in keys):
            raise ValueError(
                f'{path} is neither a FOLK / MFM pre-training checkpoint nor '
                'a converted MMPretrain backbone (keys "backbone.*"); found '
                f'keys like {keys[:3]}') from None
        if weights is not None:
            raise ValueError(f'{path} is a converted backbone: --weights '
                             'applies to pre-training checkpoints only')
        backbone = {k[len(BACKBONE_PREFIX):]: v for k, v in state_dict.items()}
        return backbone, 'converted MMPretrain backbone'
    backbone, report = extract_backbone(state_dict, weights, src=path)
    return backbone, f'{report.method} {report.weights}'


def monitor_dtype(cfg: Config, device: str) -> Optional[torch.dtype]:
    """The autocast dtype in which ``KNNMonitorHook`` runs the backbones
    during training of ``cfg`` on ``device``: the ``AmpOptimWrapper``'s
    (float16 when it names none, as on a GPU), None without AMP. On a CPU
    the configs train with ``OptimWrapper`` (``adapt_cfg_to_device``), so
    there it is None too."""
    from mmengine.optim import AmpOptimWrapper
    from mmpretrain.registry import OPTIM_WRAPPERS
    optim = cfg.get('optim_wrapper') or {}
    wrapper = OPTIM_WRAPPERS.get(optim.get('type') or 'OptimWrapper')
    if not str(device).startswith('cuda') or \
            not issubclass(wrapper, AmpOptimWrapper):
        return None
    return getattr(torch, optim.get('dtype') or 'float16')


def evaluate(config: str,
             checkpoint: str,
             weights: Optional[str] = None,
             device: Optional[str] = None,
             cfg_options: Optional[dict] = None) -> Dict:
    """k-NN top-1 of ``checkpoint`` with the hook settings of ``config``."""
    from mmpretrain.registry import HOOKS
    cfg = Config.fromfile(config)
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    device = device or ('cuda' if torch.cuda.is_available() else 'cpu')
    amp_dtype = monitor_dtype(cfg, device)
    adapt_cfg_to_device(cfg)
    DefaultScope.get_instance(
        f'knn_eval_{id(cfg)}',
        scope_name=cfg.get('default_scope', 'mmpretrain'))
    hook = HOOKS.build(knn_hook_cfg(cfg, config))
    model = build_model(cfg)
    backbone, source = load_backbone_weights(checkpoint, weights)
    result = model.backbone.load_state_dict(backbone, strict=False)
    if result.missing_keys or result.unexpected_keys:
        raise ValueError(
            f'{checkpoint} ({source}) does not fit the backbone of {config}: '
            f'missing {result.missing_keys[:5]}, unexpected '
            f'{result.unexpected_keys[:5]}')
    model.to(device).eval()
    amp = None
    if amp_dtype is not None:
        from mmengine.runner.amp import autocast
        amp = partial(autocast, dtype=amp_dtype)
    out = hook.evaluator.evaluate(
        model.backbone, partial(model.data_preprocessor, training=False), amp)
    out.update(
        amp_dtype=str(amp_dtype).replace('torch.', '') if amp_dtype else None,
        config=config,
        checkpoint=checkpoint,
        weights=source,
        k=hook.evaluator.k,
        temperature=hook.evaluator.temperature)
    return out


def main(argv: Optional[Sequence[str]] = None) -> Dict:
    args = parse_args(argv)
    result = evaluate(args.config, args.checkpoint, args.weights, args.device,
                      args.cfg_options)
    print(f"k-NN top-1: {result['top1']:.2f} % ({result['weights']}, "
          f"k={result['k']}, T={result['temperature']}, "
          f"{result['num_bank']} bank / {result['num_query']} query images, "
          f"{result['seconds']:.1f} s)")
    if args.out:
        with open(args.out, 'w') as f:
            json.dump(result, f, indent=2)
        print(f'wrote {osp.relpath(args.out)}')
    return result


if __name__ == '__main__':
    main()
