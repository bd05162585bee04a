"""FOLK / MFM pre-training checkpoints -> downstream backbone weights.

A FOLK or MFM pre-training checkpoint (an MMEngine checkpoint) holds the
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

:func:`cli_main` is the command line of
``tools/model_converters/folk_to_*.py``.
"""
import json
import os.path as osp
import re
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Dict, List, Mapping, Optional, Sequence, Tuple

import torch

from ..engine.checkpoint import atomic_torch_save, safe_torch_load

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
def load_pretrain_state_dict(
        path: str) -> Tuple[Dict[str, torch.Tensor], dict]:
    """Load a FOLK / MFM checkpoint safely and check what it is.

    Args:
        path (str): Checkpoint written by the MMEngine Runner.

    Returns:
        tuple[dict, dict]: The full ``state_dict`` and the ``meta`` dict.

    Raises:
        NotAPretrainCheckpointError: If the file has no ``backbone.`` or no
            ``neck.decoder.`` keys (it is then a classifier, a segmentor, an
            already converted file, ...).
        RuntimeError: If the file is damaged (CRC mismatch, truncated), not
            a PyTorch file (e.g. the ``last_checkpoint`` pointer: the error
            names the checkpoint it points to) or not safely loadable.
    """
    ckpt = safe_torch_load(path, verify=True)
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
    backbone = OrderedDict((k[len(prefix):], v) for k, v in state_dict.items()
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
    (r'^layers\.(\d+)\.attn\.qkv\.bias$', r'layers.\1.attn.attn.in_proj_bias'),
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
    for key in ('epoch', 'iter', 'experiment_name', 'seed', 'mmengine_version',
                'time'):
        value = meta.get(key)
        if isinstance(value, (bool, int, float, str)):
            out[key] = value
    return out


def check_output_path(src: str, dst: str) -> None:
    """Refuse an output path that would replace the source checkpoint.

    Args:
        src (str): The pre-training checkpoint.
        dst (str): The output file.

    Raises:
        ValueError: If ``dst`` is ``src`` (same file, also through a link)
            or a directory.
    """
    same = osp.realpath(src) == osp.realpath(dst)
    if not same and osp.exists(src) and osp.exists(dst):
        same = osp.samefile(src, dst)
    if same:
        raise ValueError(
            f'the output {dst} is the input checkpoint {src}: writing it '
            'would replace the pre-training checkpoint (teacher, optimizer '
            'and all) with the converted backbone. Choose another output '
            'file.')
    if osp.isdir(dst):
        raise ValueError(f'the output {dst} is a directory; give a file name')


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
    check_output_path(src, dst)
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


__all__ = [
    'FORMATS', 'WEIGHTS', 'ConversionReport', 'NotAPretrainCheckpointError',
    'check_output_path', 'cli_main', 'convert_checkpoint', 'detect_arch',
    'extract_backbone', 'group_by_prefix', 'is_folk',
    'load_pretrain_state_dict', 'report_prefix', 'to_mmpretrain', 'to_mmseg',
    'to_timm'
]
