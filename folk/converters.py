"""Turn FOLK / MFM pre-training checkpoints into downstream backbone weights.

A FOLK or MFM pre-training checkpoint (an mmengine checkpoint) holds the
student backbone (``backbone.*``), the MFM decoder (``neck.decoder.*``) and,
for FOLK only, the distillation projector (``projector.*``), the centre of
the distillation loss (``distill_head.*``) and the EMA teacher
(``teacher.module.backbone.*``, ``teacher.module.projector.*``,
``teacher.steps``). Downstream tasks need one backbone:

- :func:`to_mmpretrain`: ``backbone.<key>`` for an MMPretrain
  ``ImageClassifier`` (``init_cfg=dict(type='Pretrained', checkpoint=...,
  prefix='backbone.')`` or ``load_from``);
- :func:`to_mmseg`: keys of MMSeg's own ``VisionTransformer`` (or the
  unchanged keys of a ResNet), for ``model.pretrained=...``;
- :func:`to_timm`: keys of timm's ``VisionTransformer`` / ``ResNet``
  (``timm.create_model(..., num_classes=0).load_state_dict(sd)``, strict).

Which weights: by default the EMA **teacher** of a FOLK checkpoint (as in
DINO / iBOT, the teacher is a temporal ensemble of the student and gives
the better features for transfer) and the student of an MFM checkpoint,
which has no teacher.

Pretrained weights are loaded non-strictly by MMEngine's ``PretrainedInit``
and by MMSeg's ViT / MAE / BEiT backbones, so a wrong key silently leaves a
randomly initialised layer. :func:`check_loaded_keys` verifies a module
against a state dict and :class:`PretrainedKeysCheckHook` runs that check
(plus a check that the weights really arrived) at the start of training.
Import this module (``custom_imports=dict(imports=['folk',
'folk.converters'])``) to register the hook and the MMSeg layer-decay
optimizer constructor :class:`ViTLayerDecayOptimizerConstructor`.
"""
import json
import os
import os.path as osp
import re
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Dict, List, Mapping, Optional, Sequence, Tuple

import torch
import torch.nn as nn

from .compat import safe_torch_load
from .fileio import atomic_torch_save

TEACHER_PREFIX = 'teacher.module.backbone.'
STUDENT_PREFIX = 'backbone.'
DECODER_PREFIX = 'neck.decoder.'
FORMATS = ('mmpretrain', 'mmseg', 'timm')
WEIGHTS = ('teacher', 'student')

# Longest first: the prefix a dropped key is reported under.
_REPORT_PREFIXES = (
    'teacher.module.backbone.',
    'teacher.module.projector.',
    'teacher.module.',
    'teacher.steps',
    'teacher.',
    'neck.decoder.',
    'neck.',
    'distill_head.',
    'projector.',
    'backbone.',
    'head.',
    'data_preprocessor.',
)


class NotAPretrainCheckpointError(ValueError):
    """The file is not a FOLK / MFM pre-training checkpoint."""


# ---------------------------------------------------------------------------
# Reading a pre-training checkpoint
# ---------------------------------------------------------------------------
def load_pretrain_state_dict(path: str) -> Tuple[Dict[str, torch.Tensor],
                                                 dict]:
    """Load a FOLK / MFM checkpoint safely and check what it is.

    Args:
        path (str): Checkpoint written by the MMEngine Runner.

    Returns:
        tuple[dict, dict]: The full ``state_dict`` and the ``meta`` dict.

    Raises:
        NotAPretrainCheckpointError: If the file has no ``backbone.`` or no
            ``neck.decoder.`` keys (it is then a classifier, a segmentor, an
            already converted file, ...).
    """
    ckpt = safe_torch_load(path)
    if not isinstance(ckpt, Mapping):
        raise NotAPretrainCheckpointError(
            f'{path} is not a FOLK/MFM pre-training checkpoint: it holds a '
            f'{type(ckpt).__name__}, not a dict')
    state_dict = ckpt.get('state_dict', ckpt)
    meta = ckpt.get('meta', {}) if 'state_dict' in ckpt else {}
    if not isinstance(state_dict, Mapping):
        raise NotAPretrainCheckpointError(
            f'{path} is not a FOLK/MFM pre-training checkpoint: its '
            "'state_dict' is not a dict")
    keys = [k for k in state_dict if isinstance(k, str)]
    missing = [
        p for p in (STUDENT_PREFIX, DECODER_PREFIX)
        if not any(k.startswith(p) for k in keys)
    ]
    if missing:
        raise NotAPretrainCheckpointError(
            f'{path} is not a FOLK/MFM pre-training checkpoint: no '
            f'{" and no ".join(repr(p + "*") for p in missing)} keys (found '
            f'prefixes: {sorted(group_by_prefix(keys)) or "none"}). Pass the '
            'checkpoint written by tools/train.py with a configs/folk or '
            'configs/mfm config.')
    return dict(state_dict), dict(meta) if isinstance(meta, Mapping) else {}


def is_folk(state_dict: Mapping) -> bool:
    """Whether the state dict holds a FOLK EMA teacher."""
    return any(k.startswith(TEACHER_PREFIX) for k in state_dict)


def report_prefix(key: str) -> str:
    """The prefix under which a key is counted in the conversion report."""
    for prefix in _REPORT_PREFIXES:
        if key.startswith(prefix):
            return prefix
    return key.split('.', 1)[0] + ('.' if '.' in key else '')


def group_by_prefix(keys) -> Dict[str, int]:
    """Count keys by :func:`report_prefix` (sorted by prefix)."""
    counts: Dict[str, int] = {}
    for key in keys:
        prefix = report_prefix(key)
        counts[prefix] = counts.get(prefix, 0) + 1
    return dict(sorted(counts.items()))


@dataclass
class ConversionReport:
    """What a conversion kept and dropped."""
    src: str = ''
    dst: str = ''
    fmt: str = ''
    weights: str = ''
    method: str = ''
    arch: str = ''
    source_prefix: str = ''
    kept: int = 0
    dropped: Dict[str, int] = field(default_factory=dict)

    def lines(self) -> List[str]:
        out = [
            f'{self.src}: {self.method} checkpoint, {self.arch} backbone',
            f'kept {self.kept} keys from {self.source_prefix}* '
            f'({self.weights} weights) -> {self.fmt} format',
            f'dropped {sum(self.dropped.values())} keys:',
        ]
        out += [f'  {p}*: {n}' for p, n in self.dropped.items()]
        if self.dst:
            out.append(f'saved to {self.dst}')
        return out

    def __str__(self) -> str:
        return '\n'.join(self.lines())


def extract_backbone(
        state_dict: Mapping,
        weights: Optional[str] = None,
        src: str = '<state_dict>'
) -> Tuple['OrderedDict[str, torch.Tensor]', ConversionReport]:
    """Take the student or teacher backbone out of a pre-training state dict.

    Args:
        state_dict (Mapping): Full FOLK / MFM state dict.
        weights (str, optional): ``'teacher'`` or ``'student'``. Defaults to
            the teacher for FOLK and the student for MFM.
        src (str): Name of the source, for messages.

    Returns:
        tuple: Backbone state dict without prefix (MMPretrain key names) and
        the :class:`ConversionReport` (kept and dropped keys).
    """
    folk = is_folk(state_dict)
    if weights is None:
        weights = 'teacher' if folk else 'student'
    if weights not in WEIGHTS:
        raise ValueError(f'weights must be one of {WEIGHTS}, got {weights!r}')
    if weights == 'teacher' and not folk:
        raise ValueError(
            f'{src} is an MFM checkpoint (no {TEACHER_PREFIX}* keys) and has '
            "no EMA teacher: use --weights student")
    prefix = TEACHER_PREFIX if weights == 'teacher' else STUDENT_PREFIX
    backbone = OrderedDict(
        (k[len(prefix):], v) for k, v in state_dict.items()
        if k.startswith(prefix))
    dropped = [k for k in state_dict if not k.startswith(prefix)]
    report = ConversionReport(
        src=src,
        weights=weights,
        method='FOLK' if folk else 'MFM',
        arch=detect_arch(backbone),
        source_prefix=prefix,
        kept=len(backbone),
        dropped=group_by_prefix(dropped))
    return backbone, report


def detect_arch(backbone: Mapping) -> str:
    """``'vit'`` or ``'resnet'`` from MMPretrain backbone key names."""
    if 'layers.0.attn.qkv.weight' in backbone:
        return 'vit'
    if 'layer1.0.conv1.weight' in backbone:
        return 'resnet'
    raise ValueError('unsupported backbone: expected an MMPretrain '
                     'VisionTransformer or ResNet, got keys like '
                     f'{list(backbone)[:5]}')


# ---------------------------------------------------------------------------
# Key mappings (MMPretrain names -> target names)
# ---------------------------------------------------------------------------
_MMSEG_VIT_RULES = (
    (r'^layers\.(\d+)\.attn\.qkv\.weight$',
     r'layers.\1.attn.attn.in_proj_weight'),
    (r'^layers\.(\d+)\.attn\.qkv\.bias$',
     r'layers.\1.attn.attn.in_proj_bias'),
    (r'^layers\.(\d+)\.attn\.proj\.', r'layers.\1.attn.attn.out_proj.'),
)  # everything else (ln1/ln2, ffn.layers.*, patch_embed.projection,
#    cls_token, pos_embed, final ln1) has the same name in MMSeg's ViT.

_TIMM_VIT_RULES = (
    (r'^patch_embed\.projection\.', 'patch_embed.proj.'),
    (r'^ln1\.', 'norm.'),  # final norm
    (r'^pre_norm\.', 'norm_pre.'),
    (r'^layers\.(\d+)\.ln1\.', r'blocks.\1.norm1.'),
    (r'^layers\.(\d+)\.ln2\.', r'blocks.\1.norm2.'),
    (r'^layers\.(\d+)\.attn\.gamma1\.weight$', r'blocks.\1.ls1.gamma'),
    (r'^layers\.(\d+)\.ffn\.gamma2\.weight$', r'blocks.\1.ls2.gamma'),
    (r'^layers\.(\d+)\.attn\.', r'blocks.\1.attn.'),
    (r'^layers\.(\d+)\.ffn\.layers\.0\.0\.', r'blocks.\1.mlp.fc1.'),
    (r'^layers\.(\d+)\.ffn\.layers\.1\.', r'blocks.\1.mlp.fc2.'),
)


def _rename(backbone: Mapping, rules) -> 'OrderedDict[str, torch.Tensor]':
    out = OrderedDict()
    for key, value in backbone.items():
        new = key
        for pattern, repl in rules:
            new, n = re.subn(pattern, repl, key)
            if n:
                break
        out[new] = value
    return out


def to_mmpretrain(backbone: Mapping) -> 'OrderedDict[str, torch.Tensor]':
    """``backbone.<key>``: for ``init_cfg`` with ``prefix='backbone.'``."""
    return OrderedDict((STUDENT_PREFIX + k, v) for k, v in backbone.items())


def to_mmseg(backbone: Mapping) -> 'OrderedDict[str, torch.Tensor]':
    """Keys of MMSeg's ``VisionTransformer`` (ResNet keys are unchanged).

    MMSeg's ViT wraps ``nn.MultiheadAttention`` (``attn.attn.in_proj_*``,
    ``attn.attn.out_proj.*``); the q, k, v order of the fused weight is the
    same. Build it with ``patch_bias=True`` and ``norm_cfg=dict(type='LN',
    eps=1e-6)`` to compute the same features as MMPretrain's ViT.
    """
    if detect_arch(backbone) == 'resnet':
        return OrderedDict(backbone)
    bad = [k for k in backbone if '.gamma' in k or k.startswith('pre_norm')]
    if bad:
        raise ValueError('MMSeg VisionTransformer has no layer scale / '
                         f'pre-norm; cannot convert keys {bad[:3]}')
    return _rename(backbone, _MMSEG_VIT_RULES)


def to_timm(backbone: Mapping) -> 'OrderedDict[str, torch.Tensor]':
    """Keys of timm's ``VisionTransformer`` (``vit_*_patch16_224``) or
    ``ResNet`` (unchanged), without classifier (``num_classes=0``)."""
    if detect_arch(backbone) == 'resnet':
        return OrderedDict(backbone)
    return _rename(backbone, _TIMM_VIT_RULES)


_CONVERTERS = dict(mmpretrain=to_mmpretrain, mmseg=to_mmseg, timm=to_timm)


# ---------------------------------------------------------------------------
# Writing
# ---------------------------------------------------------------------------
def _plain_meta(meta: Mapping) -> dict:
    """Small, plain-typed subset of the pre-training meta."""
    out = {}
    for key in ('epoch', 'iter', 'experiment_name', 'seed',
                'mmengine_version', 'time'):
        value = meta.get(key)
        if isinstance(value, (bool, int, float, str)):
            out[key] = value
    return out


def convert_checkpoint(src: str,
                       dst: str,
                       fmt: str,
                       weights: Optional[str] = None) -> ConversionReport:
    """Convert a FOLK / MFM checkpoint into ``fmt`` and write it atomically.

    Args:
        src (str): FOLK / MFM pre-training checkpoint.
        dst (str): Output file.
        fmt (str): ``'mmpretrain'``, ``'mmseg'`` or ``'timm'``.
        weights (str, optional): ``'teacher'`` / ``'student'``; defaults to
            the teacher for FOLK and the student for MFM.

    Returns:
        ConversionReport: What was kept and dropped.

    Output layout: ``{'state_dict': ..., 'meta': {...}}`` for mmpretrain and
    mmseg; a plain state dict for timm (what ``load_state_dict`` takes).
    """
    if fmt not in FORMATS:
        raise ValueError(f'format must be one of {FORMATS}, got {fmt!r}')
    state_dict, meta = load_pretrain_state_dict(src)
    backbone, report = extract_backbone(state_dict, weights, src=src)
    converted = _CONVERTERS[fmt](backbone)
    report.fmt = fmt
    report.dst = dst
    if fmt == 'timm':
        out = dict(converted)
    else:
        info = _plain_meta(meta)
        info.update(
            folk_converter=dict(
                source=osp.basename(src),
                method=report.method,
                weights=report.weights,
                arch=report.arch,
                format=fmt,
                kept=report.kept,
                dropped=json.dumps(report.dropped)))
        out = dict(state_dict=dict(converted), meta=info)
    atomic_torch_save(out, dst)
    return report


def cli_main(fmt: str, argv: Optional[Sequence[str]] = None) -> int:
    """Shared command line of ``tools/model_converters/folk_to_*.py``."""
    import argparse
    target = dict(
        mmpretrain='an MMPretrain ImageClassifier (keys backbone.*; load '
        "with init_cfg=dict(type='Pretrained', checkpoint=OUT, "
        "prefix='backbone.'))",
        mmseg="MMSeg's VisionTransformer (model.pretrained=OUT)",
        timm="timm's VisionTransformer / ResNet (create_model(..., "
        'num_classes=0).load_state_dict(torch.load(OUT)))')[fmt]
    parser = argparse.ArgumentParser(
        prog=f'folk_to_{fmt}.py',
        description=f'Convert a FOLK/MFM pre-training checkpoint into '
        f'backbone weights for {target}.')
    parser.add_argument('src', help='FOLK/MFM checkpoint (iter_*.pth)')
    parser.add_argument('dst', help='output file')
    parser.add_argument(
        '--weights',
        choices=WEIGHTS,
        default=None,
        help='which backbone to export. Default: "teacher" for FOLK, '
        'because the EMA teacher is a temporal ensemble of the student '
        'that gives the better features for transfer (the usual choice in '
        'DINO/iBOT-style methods); "student" for MFM, which has no '
        'teacher (--weights teacher on an MFM checkpoint is an error).')
    args = parser.parse_args(argv)
    try:
        report = convert_checkpoint(args.src, args.dst, fmt, args.weights)
    except (NotAPretrainCheckpointError, FileNotFoundError, RuntimeError,
            ValueError) as err:
        parser.exit(2, f'error: {err}\n')
    print(report)
    return 0


# ---------------------------------------------------------------------------
# Checking what a model loaded
# ---------------------------------------------------------------------------
@dataclass
class KeyCheck:
    """Result of :func:`check_loaded_keys`."""
    missing: List[str] = field(default_factory=list)
    unexpected: List[str] = field(default_factory=list)
    shape_mismatch: List[str] = field(default_factory=list)
    resized: List[str] = field(default_factory=list)
    allowed_missing: List[str] = field(default_factory=list)
    matched: int = 0

    @property
    def ok(self) -> bool:
        return not self.missing and not self.shape_mismatch

    def __str__(self) -> str:
        parts = [f'{self.matched} keys matched']
        for name in ('missing', 'shape_mismatch', 'resized',
                     'allowed_missing', 'unexpected'):
            keys = getattr(self, name)
            if keys:
                parts.append(f'{len(keys)} {name.replace("_", " ")} '
                             f'({", ".join(keys[:8])}'
                             f'{", ..." if len(keys) > 8 else ""})')
        return '; '.join(parts)


def _strip_prefix(state_dict: Mapping, prefix: str) -> Dict[str, object]:
    if not prefix:
        return dict(state_dict)
    return {
        k[len(prefix):]: v
        for k, v in state_dict.items() if k.startswith(prefix)
    }


def check_loaded_keys(model: nn.Module,
                      state_dict: Mapping,
                      prefix: str = '',
                      allow_missing: Sequence[str] = (),
                      resizable: Sequence[str] = ('pos_embed', ),
                      strict: bool = True) -> KeyCheck:
    """Check that ``state_dict`` provides every weight of ``model``.

    Use it on the module that received the pre-trained weights (e.g.
    ``classifier.backbone``): MMEngine's ``PretrainedInit`` and MMSeg's
    ViT / MAE / BEiT backbones load non-strictly and hide mismatches.

    Args:
        model (nn.Module): The module (usually a backbone).
        state_dict (Mapping): Weights meant for it (a converted file's
            ``state_dict``, or a plain state dict).
        prefix (str): Only keys starting with it are used, with it removed
            (``'backbone.'`` for the MMPretrain format).
        allow_missing (Sequence[str]): Key prefixes of ``model`` that are
            new and may be missing (e.g. ``'ln2.'``, the ``fc_norm`` that
            ``out_type='avg_featmap'`` adds).
        resizable (Sequence[str]): Keys whose shape may differ because the
            model resizes them on load (position embeddings).
        strict (bool): Raise if anything is missing or has the wrong shape.

    Returns:
        KeyCheck: Missing, unexpected, shape-mismatched and resized keys.

    Raises:
        KeyError: If ``strict`` and a key is missing or has a wrong shape.
    """
    if 'state_dict' in state_dict and isinstance(state_dict['state_dict'],
                                                 Mapping):
        state_dict = state_dict['state_dict']
    source = _strip_prefix(state_dict, prefix)
    target = model.state_dict()
    result = KeyCheck()
    for key, value in target.items():
        if key not in source:
            if any(key.startswith(p) for p in allow_missing):
                result.allowed_missing.append(key)
            else:
                result.missing.append(key)
            continue
        src_shape = tuple(getattr(source[key], 'shape', ()))
        if src_shape != tuple(value.shape):
            if key.split('.')[-1] in resizable:
                result.resized.append(key)
            else:
                result.shape_mismatch.append(
                    f'{key} {src_shape} vs {tuple(value.shape)}')
            continue
        result.matched += 1
    result.unexpected = [k for k in source if k not in target]
    if strict and not result.ok:
        raise KeyError(f'pre-trained weights do not fit '
                       f'{type(model).__name__}: {result}')
    return result


def check_weights_equal(model: nn.Module,
                        state_dict: Mapping,
                        prefix: str = '') -> List[str]:
    """Keys whose values in ``model`` differ from ``state_dict``.

    Only keys present in both with the same shape are compared; an empty
    list means the weights were really loaded.
    """
    if 'state_dict' in state_dict and isinstance(state_dict['state_dict'],
                                                 Mapping):
        state_dict = state_dict['state_dict']
    source = _strip_prefix(state_dict, prefix)
    differ = []
    for key, value in model.state_dict().items():
        ref = source.get(key)
        if ref is None or tuple(ref.shape) != tuple(value.shape):
            continue
        if not torch.equal(value.detach().cpu().to(ref.dtype), ref.cpu()):
            differ.append(key)
    return differ


# ---------------------------------------------------------------------------
# Runner integration (registered when this module is imported)
# ---------------------------------------------------------------------------
def _register():
    from mmengine.hooks import Hook
    from mmengine.model import is_model_wrapper
    from mmengine.registry import HOOKS

    @HOOKS.register_module(force=True)
    class PretrainedKeysCheckHook(Hook):
        """Fail early when pre-trained weights did not (fully) load.

        Before training, reads the checkpoint named in the module's
        ``init_cfg`` (``type='Pretrained'``; MMSeg's ``model.pretrained``
        ends up there too), runs :func:`check_loaded_keys` (zero missing
        keys, except ``allow_missing``) and, unless the run resumes or
        uses ``load_from``, compares the module's weights with the file.

        Args:
            module (str): Sub-module that received the weights.
            checkpoint (str, optional): File; defaults to ``init_cfg``'s.
            prefix (str, optional): Key prefix in the file; defaults to
                ``init_cfg``'s ``prefix`` (``''`` if none).
            allow_missing (Sequence[str]): See :func:`check_loaded_keys`.
            check_values (bool): Also check that the values arrived.
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
            model = runner.model
            if is_model_wrapper(model):
                model = model.module
            sub = model.get_submodule(self.module)
            init_cfg = getattr(sub, 'init_cfg', None) or {}
            if isinstance(init_cfg, (list, tuple)):
                init_cfg = next((c for c in init_cfg
                                 if c.get('type') == 'Pretrained'), {})
            path = self.checkpoint or init_cfg.get('checkpoint')
            if not path:
                runner.logger.warning(
                    f'PretrainedKeysCheckHook: {self.module} has no '
                    'pre-trained checkpoint: training from scratch.')
                return
            prefix = self.prefix if self.prefix is not None else \
                init_cfg.get('prefix', '')
            if osp.isfile(path):
                ckpt = safe_torch_load(path)
            else:  # URL, remote storage: as the model loaded it
                from mmengine.runner.checkpoint import CheckpointLoader
                ckpt = CheckpointLoader.load_checkpoint(
                    path, map_location='cpu')
            result = check_loaded_keys(
                sub, ckpt, prefix=prefix, allow_missing=self.allow_missing,
                strict=False)
            runner.logger.info(
                f'PretrainedKeysCheckHook: {self.module} <- {path}: '
                f'{result}')
            if not result.ok:
                raise KeyError(
                    f'{path} does not fit model.{self.module}: {result}. '
                    'Convert FOLK/MFM checkpoints with '
                    'tools/model_converters/folk_to_*.py for the target '
                    'library.')
            skip = runner._resume or runner._load_from
            if self.check_values and not skip:
                differ = check_weights_equal(sub, ckpt, prefix=prefix)
                if differ:
                    raise RuntimeError(
                        f'model.{self.module} does not hold the weights of '
                        f'{path} ({len(differ)} tensors differ, e.g. '
                        f'{differ[:3]}): the pre-trained checkpoint was not '
                        'loaded (check init_cfg / pretrained).')

    return PretrainedKeysCheckHook


def _register_mmseg_constructor():
    try:
        from mmseg.registry import OPTIM_WRAPPER_CONSTRUCTORS
    except (ImportError, AssertionError):  # pragma: no cover
        return None  # no (compatible) mmseg: classification only
    from mmengine.optim import DefaultOptimWrapperConstructor

    @OPTIM_WRAPPER_CONSTRUCTORS.register_module(force=True)
    class ViTLayerDecayOptimizerConstructor(DefaultOptimWrapperConstructor):
        """Layer-wise lr decay for a segmentor with a ViT backbone.

        MMSeg's ``LearningRateDecayOptimizerConstructor`` accepts only
        backbones whose class name contains ``BEiT`` / ``MAE`` / ``ConvNeXt``
        (and gives ``pos_embed`` / ``cls_token`` weight decay). This one
        uses the same layer ids as MMSeg for BEiT / MAE (embeddings: 0,
        ``backbone.layers.i``: i + 1, everything else incl. the decode head:
        ``num_layers + 1``), lr scale ``layer_decay_rate ** (num_layers + 1 -
        id)``, and no weight decay for biases, norms (1-D params),
        ``pos_embed`` and ``cls_token``.

        ``paramwise_cfg``: ``num_layers`` (int), ``layer_decay_rate``
        (float).
        """

        def add_params(self, params, module, **kwargs):
            num_layers = self.paramwise_cfg['num_layers'] + 2
            rate = self.paramwise_cfg.get(
                'layer_decay_rate', self.paramwise_cfg.get('decay_rate', 1.))
            groups = {}
            for name, param in module.named_parameters():
                if not param.requires_grad:
                    continue
                last = name.split('.')[-1]
                if param.ndim == 1 or name.endswith('.bias') or last in (
                        'pos_embed', 'cls_token', 'mask_token'):
                    decay, wd = 'no_decay', 0.
                else:
                    decay, wd = 'decay', self.base_wd
                if last in ('pos_embed', 'cls_token', 'mask_token') and \
                        name.startswith('backbone.'):
                    layer_id = 0
                elif name.startswith('backbone.patch_embed'):
                    layer_id = 0
                elif name.startswith('backbone.layers.'):
                    layer_id = int(name.split('.')[2]) + 1
                else:
                    layer_id = num_layers - 1
                key = f'layer_{layer_id}_{decay}'
                if key not in groups:
                    scale = rate**(num_layers - layer_id - 1)
                    groups[key] = dict(
                        params=[], weight_decay=wd, lr_scale=scale,
                        lr=scale * self.base_lr, group_name=key)
                groups[key]['params'].append(param)
            params.extend(groups.values())

    return ViTLayerDecayOptimizerConstructor


PretrainedKeysCheckHook = _register()
ViTLayerDecayOptimizerConstructor = _register_mmseg_constructor()
