"""Compatibility fixes for the pinned stack on newer PyTorch and mmcv-lite.

Every fix here is small, idempotent, applied once by :func:`apply` (called on
``import folk``) and covered by ``tests/test_compat.py``. The numbers refer to
the breakages recorded for this project's dependency set:

1. ``torch.load`` defaults to ``weights_only=True`` since torch 2.6, but
   mmengine checkpoints pickle a few plain objects (``HistoryBuffer``, numpy
   scalars and arrays). We keep ``weights_only=True`` and allow-list exactly
   those types (:func:`folk.engine.checkpoint.allow_safe_globals`);
   arbitrary pickled objects are still refused.
2. ``mmengine.dist`` always calls ``torch.cuda.set_device`` and its configs
   default to NCCL, so ``--launcher pytorch`` fails on a host without CUDA.
   Without CUDA we initialise the process group with gloo and select no
   device.
3. mmseg imports ``mmcv.ops`` at module level in a few files; mmcv-lite has
   no compiled ops. When (and only when) ``mmcv.ops`` cannot be imported we
   register a tiny pure-PyTorch stand-in with the two functions mmseg needs
   at import time (``point_sample`` and ``sigmoid_focal_loss``). With full
   mmcv installed nothing is replaced.
4. ``mmcv.adjust_hue`` (used by MMPretrain's ``ColorJitter``) computes
   ``np.uint8(hue_factor * 255)``, which raises ``OverflowError`` under
   numpy 2 for every negative hue shift. Negative shifts are applied here
   with the same wrap-around arithmetic; non-negative ones call mmcv.
5. Checkpoint I/O in mmengine (see ``docs/reliability.md``), routed
   through :mod:`folk.engine.checkpoint`:

   - mmengine's local loader calls ``torch.load`` without ``weights_only``
     (safe only through torch's default) and its errors do not name the
     file; it is re-registered to use ``safe_torch_load``.
   - mmengine's ``http(s)://`` loader uses
     ``torch.hub.load_state_dict_from_url``, whose ``weights_only`` defaults
     to **False**: a downloaded checkpoint could run arbitrary code. It is
     replaced by ``safe_load_url``, which always passes
     ``weights_only=True``.
   - ``save_checkpoint`` writes the file in place (``open(path, 'wb')``), so
     a process killed while saving leaves a truncated file under the final
     name, which ``last_checkpoint`` may then point to. Local checkpoints
     are written to a temporary file in the same directory, fsynced and
     renamed with :func:`os.replace` (atomic on POSIX), see
     ``atomic_torch_save``. This is patched in the library function
     rather than in a hook so that every writer (runner, hooks, tools) is
     covered whatever checkpoint hook a config uses.
   - torch.load does not check the CRC of tensor data: every local file
     MMEngine loads (``--resume PATH``, ``load_from``, ``init_cfg``) is
     checked first (``verify_checkpoint``) and a damaged one is refused.
   - ``_load_checkpoint_with_prefix`` (``init_cfg=dict(type='Pretrained',
     prefix=...)``) asserts with a bare ``'backbone. is not in the
     pretrained model'``; the error names the file, the prefixes it holds
     and the converter to use.
6. MMEngine's Runner passes ``device_ids=[LOCAL_RANK]`` to
   ``MMDistributedDataParallel`` whatever the device, and DDP refuses
   ``device_ids`` for a CPU module: launchers that bypass
   ``folk.engine.adapt_cfg_to_device`` (``mim train ... --launcher
   pytorch``) failed on a CPU host. Without CUDA, ``device_ids`` and
   ``output_device`` are dropped for modules on the CPU.
"""
import functools
import os
import sys
import types
import warnings

import torch
import torch.nn.functional as F

_APPLIED = False


# ---------------------------------------------------------------------------
# 2. Distributed initialisation without CUDA
# ---------------------------------------------------------------------------
def _patch_dist_init() -> None:
    from mmengine.dist import utils as dist_utils

    original = dist_utils._init_dist_pytorch
    if getattr(original, '_folk_patched', False):
        return

    @functools.wraps(original)
    def _init_dist_pytorch(backend, init_backend='torch', **kwargs):
        if torch.cuda.is_available():
            return original(backend, init_backend=init_backend, **kwargs)
        if backend != 'gloo':
            warnings.warn(f'CUDA is not available: using the gloo backend '
                          f'instead of {backend!r}.')
        torch.distributed.init_process_group(backend='gloo', **kwargs)

    _init_dist_pytorch._folk_patched = True
    dist_utils._init_dist_pytorch = _init_dist_pytorch


# ---------------------------------------------------------------------------
# 3. mmcv.ops stand-in for mmcv-lite
# ---------------------------------------------------------------------------
def point_sample(input: torch.Tensor,
                 points: torch.Tensor,
                 align_corners: bool = False,
                 **kwargs) -> torch.Tensor:
    """Sample ``input`` at normalised ``points`` in [0, 1] (mmcv semantics).

    Args:
        input (Tensor): Feature map (N, C, H, W).
        points (Tensor): Points (N, P, 2) or (N, Hp, Wp, 2) in [0, 1].
        align_corners (bool): As in :func:`torch.nn.functional.grid_sample`.

    Returns:
        Tensor: (N, C, P) or (N, C, Hp, Wp).
    """
    add_dim = points.dim() == 3
    if add_dim:
        points = points.unsqueeze(2)
    out = F.grid_sample(
        input, 2.0 * points - 1.0, align_corners=align_corners, **kwargs)
    return out.squeeze(3) if add_dim else out


def sigmoid_focal_loss(pred: torch.Tensor,
                       target: torch.Tensor,
                       gamma: float = 2.0,
                       alpha: float = 0.25,
                       weight=None,
                       reduction: str = 'mean') -> torch.Tensor:
    """Sigmoid focal loss with integer class targets (mmcv semantics)."""
    num_classes = pred.size(1)
    one_hot = F.one_hot(target.long(), num_classes + 1)[:, :num_classes]
    one_hot = one_hot.type_as(pred)
    prob = pred.sigmoid()
    pt = (1 - prob) * one_hot + prob * (1 - one_hot)
    focal_weight = (alpha * one_hot + (1 - alpha) *
                    (1 - one_hot)) * pt.pow(gamma)
    loss = F.binary_cross_entropy_with_logits(
        pred, one_hot, reduction='none') * focal_weight
    if weight is not None:
        loss = loss * weight.view(-1, 1)
    if reduction == 'mean':
        return loss.mean()
    if reduction == 'sum':
        return loss.sum()
    return loss


def _install_mmcv_ops_standin() -> None:
    try:
        import mmcv.ops  # noqa: F401
        return  # full mmcv: nothing to do
    except ImportError:
        pass
    import mmcv
    ops = types.ModuleType('mmcv.ops')
    ops.__doc__ = ('Pure-PyTorch stand-in installed by folk.compat because '
                   'mmcv-lite has no compiled ops.')
    ops.point_sample = point_sample
    ops.sigmoid_focal_loss = sigmoid_focal_loss
    ops.FOLK_STANDIN = True

    def __getattr__(name):
        # mmseg guards optional ops with ``except ModuleNotFoundError``
        # (e.g. ``from mmcv.ops import CrissCrossAttention``): a missing op
        # must raise that, not the ImportError a plain module gives.
        if name.startswith('__'):
            raise AttributeError(name)
        raise ModuleNotFoundError(
            f'mmcv.ops.{name} needs full mmcv (mmcv._ext); the folk stand-in '
            'only provides point_sample and sigmoid_focal_loss',
            name='mmcv._ext')

    ops.__getattr__ = __getattr__
    sys.modules['mmcv.ops'] = ops
    mmcv.ops = ops


# ---------------------------------------------------------------------------
# 4. mmcv.adjust_hue under numpy 2
# ---------------------------------------------------------------------------
def _patch_adjust_hue() -> None:
    import cv2
    import mmcv
    import numpy as np
    from PIL import Image

    original = mmcv.adjust_hue
    if getattr(original, '_folk_patched', False):
        return

    @functools.wraps(original)
    def adjust_hue(img, hue_factor: float, backend=None):
        if hue_factor >= 0 or not -0.5 <= hue_factor:
            return original(img, hue_factor, backend=backend)
        shift = int(hue_factor * 255) % 256  # wrap-around, as uint8 addition
        if (backend or mmcv.image.io.imread_backend) == 'pillow':
            pil = Image.fromarray(img[..., ::-1], mode='RGB')
            h, s, v = pil.convert('HSV').split()
            h = Image.fromarray(
                ((np.asarray(h, np.int16) + shift) % 256).astype(np.uint8),
                'L')
            out = Image.merge('HSV', (h, s, v)).convert('RGB')
            return np.array(out, dtype=img.dtype)[..., ::-1]
        hsv = cv2.cvtColor(img.astype(np.uint8), cv2.COLOR_BGR2HSV_FULL)
        hsv[..., 0] = (hsv[..., 0].astype(np.int16) + shift) % 256
        return cv2.cvtColor(hsv, cv2.COLOR_HSV2BGR_FULL).astype(img.dtype)

    adjust_hue._folk_patched = True
    mmcv.adjust_hue = adjust_hue
    mmcv.image.adjust_hue = adjust_hue
    mmcv.image.photometric.adjust_hue = adjust_hue


# ---------------------------------------------------------------------------
# 5. (and 1.) mmengine checkpoint I/O: safe loads, atomic saves
# ---------------------------------------------------------------------------
def _is_local_path(filename) -> bool:
    return '://' not in os.fspath(filename)


def _patch_checkpoint_io() -> None:
    from mmengine import runner as runner_pkg
    from mmengine.runner import checkpoint as ckpt_mod
    from mmengine.runner import runner as runner_mod
    from mmengine.runner.checkpoint import CheckpointLoader
    from mmengine.utils import dl_utils

    # imported here: folk.engine imports mmpretrain, which comes after the
    # mmcv fixes (3., 4.); apply() runs this patch last
    from .engine.checkpoint import (allow_safe_globals, atomic_torch_save,
                                    safe_load_url, safe_torch_load)

    allow_safe_globals()
    if getattr(ckpt_mod.save_checkpoint, '_folk_patched', False):
        return

    # -- loading ------------------------------------------------------------
    def load_from_local(filename, map_location):
        """Local checkpoints through :func:`safe_torch_load` (folk)."""
        filename = os.path.expanduser(os.fspath(filename))
        if not os.path.isfile(filename):
            raise FileNotFoundError(f'{filename} can not be found.')
        return safe_torch_load(
            filename, map_location=map_location, verify=True)

    load_from_local._folk_patched = True
    CheckpointLoader.register_scheme(prefixes='', force=True)(load_from_local)
    ckpt_mod.load_from_local = load_from_local
    ckpt_mod.load_url = safe_load_url
    dl_utils.load_url = safe_load_url

    # -- saving -------------------------------------------------------------
    original = ckpt_mod.save_checkpoint

    @functools.wraps(original)
    def save_checkpoint(checkpoint,
                        filename,
                        file_client_args=None,
                        backend_args=None):
        if (file_client_args is None and backend_args is None
                and _is_local_path(filename)):
            atomic_torch_save(checkpoint, filename)
            return
        return original(
            checkpoint,
            filename,
            file_client_args=file_client_args,
            backend_args=backend_args)

    save_checkpoint._folk_patched = True
    # ``Runner.save_checkpoint`` uses the name imported into
    # mmengine.runner.runner; hooks import it from mmengine.runner.
    ckpt_mod.save_checkpoint = save_checkpoint
    runner_mod.save_checkpoint = save_checkpoint
    runner_pkg.save_checkpoint = save_checkpoint

    # -- init_cfg prefix ----------------------------------------------------
    def _load_checkpoint_with_prefix(prefix, filename, map_location=None):
        """MMEngine's function with an error that says what to do."""
        checkpoint = ckpt_mod._load_checkpoint(
            filename, map_location=map_location)
        state_dict = checkpoint.get('state_dict', checkpoint) if isinstance(
            checkpoint, dict) else checkpoint
        if not prefix.endswith('.'):
            prefix += '.'
        out = {
            k[len(prefix):]: v
            for k, v in state_dict.items() if k.startswith(prefix)
        }
        if not out:
            found = sorted({k.split('.', 1)[0] + '.' for k in state_dict})
            raise KeyError(
                f'{filename}: no {prefix!r} keys for init_cfg '
                f'(prefix={prefix.rstrip(".")!r}); the file holds the '
                f'prefixes {found[:8]}. It is probably in another format '
                '(an MMSeg or timm export, or a pre-training checkpoint): '
                'convert a FOLK/MFM pre-training checkpoint with '
                'tools/model_converters/folk_to_mmpretrain.py for '
                'MMPretrain configs, folk_to_mmseg.py for MMSeg configs.')
        return out

    _load_checkpoint_with_prefix._folk_patched = True
    ckpt_mod._load_checkpoint_with_prefix = _load_checkpoint_with_prefix


# ---------------------------------------------------------------------------
# 6. CPU DistributedDataParallel without device_ids
# ---------------------------------------------------------------------------
def _patch_cpu_ddp() -> None:
    from mmengine.model import MMDistributedDataParallel

    original = MMDistributedDataParallel.__init__
    if getattr(original, '_folk_patched', False):
        return

    @functools.wraps(original)
    def __init__(self, module, *args, **kwargs):
        if (not torch.cuda.is_available()
                and kwargs.get('device_ids') is not None
                and all(p.device.type == 'cpu' for p in module.parameters())):
            kwargs['device_ids'] = None
            kwargs.pop('output_device', None)
        original(self, module, *args, **kwargs)

    __init__._folk_patched = True
    MMDistributedDataParallel.__init__ = __init__


def apply() -> None:
    """Apply every fix once. Safe to call many times."""
    global _APPLIED
    if _APPLIED:
        return
    _patch_dist_init()
    _install_mmcv_ops_standin()
    _patch_adjust_hue()
    _patch_checkpoint_io()
    _patch_cpu_ddp()
    _APPLIED = True
