"""Logging, hardware, JSON I/O and the command line shared by the study.

The study's scripts (``pretrain.py``, ``knn.py``, ``linear.py``,
``finetune.py``, ``segment.py``, ``run_study.py``) hold no part of the
method: the models, the views, the filters and the monitors come from the
``folk`` package and MMPretrain / MMSegmentation. The study's own pieces
are split by subject: :mod:`presets` (scale and variants), :mod:`sources`
(reading the data), :mod:`arrays` (the in-memory data set),
:mod:`builders` (backbone and schedule configs) and this module.
"""
import argparse
import json
import math
import os
import os.path as osp
import platform
import time
from typing import List, Optional, Sequence, Tuple

import numpy as np
import torch
from presets import PRESETS, parse_set
from sources import REPO

import folk  # noqa: F401  (compat fixes + registration)

_T0 = time.perf_counter()


def log(msg: str) -> None:
    """Print a progress line with the seconds since start."""
    print(f'[{time.perf_counter() - _T0:7.1f}s] {msg}', flush=True)


def rel(path: str) -> str:
    """``path`` relative to the repository (for published files)."""
    return osp.relpath(osp.abspath(path), REPO)


def quiet_logging() -> None:
    """An ERROR-level current MMEngine logger, so that building models
    outside a Runner does not print every parameter's initialisation."""
    from mmengine.logging import MMLogger
    MMLogger.get_instance(f'study_{time.time_ns()}', log_level='ERROR')


def set_threads(threads: Optional[int], device) -> int:
    """CPU threads: ``threads`` or, by default, 1 when other work is
    running (1-min load average + 1 > cores: spinning OpenMP threads were
    then up to 100x slower), else all cores."""
    if device.type == 'cpu':
        if threads is None:
            cores = os.cpu_count() or 1
            load = os.getloadavg()[0] if hasattr(os, 'getloadavg') else 0.
            threads = 1 if load + 1 > cores else cores
        torch.set_num_threads(threads)
    return torch.get_num_threads()


def hardware(device) -> dict:
    info = dict(
        torch=torch.__version__,
        python=platform.python_version(),
        cpu=platform.processor() or platform.machine(),
        cpu_count=os.cpu_count(),
        threads=torch.get_num_threads(),
        device_type=device.type)
    if device.type == 'cuda':
        info['device'] = torch.cuda.get_device_name(device)
        info['cuda'] = torch.version.cuda
    else:
        info['device'] = f'CPU ({info["cpu"]}, {os.cpu_count()} cores)'
    return info


def summarize(values: List[Optional[float]]) -> Optional[dict]:
    """mean / std (ddof 1) / min / max / n of the non-None values."""
    vals = [v for v in values if v is not None]
    if not vals:
        return None
    a = np.array(vals, dtype=float)
    return dict(
        mean=float(a.mean()),
        std=float(a.std(ddof=1)) if len(a) > 1 else 0.0,
        min=float(a.min()),
        max=float(a.max()),
        n=len(a))


def write_json(obj, path: str) -> None:
    """Write ``obj`` atomically (a partial file never replaces a good one)."""
    tmp = path + '.tmp'
    with open(tmp, 'w') as f:
        json.dump(obj, f, indent=1)
    os.replace(tmp, path)


def finite(x) -> bool:
    return isinstance(x, (int, float)) and math.isfinite(x)


class _DropMessages:
    """``logging.Filter`` dropping records that contain any of ``parts``."""

    def __init__(self, parts: Sequence[str]) -> None:
        self.parts = tuple(parts)

    def filter(self, record) -> bool:
        msg = record.getMessage()
        return not any(part in msg for part in self.parts)


def quiet(runner) -> None:
    """Drop the optimizer constructor's line per frozen (EMA teacher)
    parameter from a Runner's log; everything else is kept."""
    runner.logger.addFilter(_DropMessages(['since its requires_grad=False']))


def script_parser(doc: str,
                  weights: bool = False,
                  data: bool = True,
                  seed: bool = True,
                  cfg_options: bool = False) -> argparse.ArgumentParser:
    """The arguments the study's scripts share.

    Args:
        doc (str): The script's docstring (its first line describes it).
        weights (bool): Add ``--weights`` (the protocol scripts).
        data (bool): Add ``--data`` (the scripts that read Imagenette).
        seed (bool): Add ``--seed`` (the scripts that run one seed).
        cfg_options (bool): Add ``--cfg-options`` (the scripts that
            pre-train from ``configs/study``).

    Returns:
        argparse.ArgumentParser: With ``--preset``, ``--device``,
        ``--threads`` and ``--set``, and the optional arguments above.
    """
    parser = argparse.ArgumentParser(description=doc.split('\n')[0])
    parser.add_argument('--preset', default='cpu', choices=sorted(PRESETS))
    if weights:
        parser.add_argument(
            '--weights',
            required=True,
            help='backbones.pth written by pretrain.py')
    if data:
        parser.add_argument(
            '--data',
            default='auto',
            help='imagenette64.zip or an imagenette folder')
    parser.add_argument('--device', default=None)
    parser.add_argument(
        '--threads',
        type=int,
        default=None,
        help='CPU threads (default: 1 when the machine is busy, else all '
        'cores)')
    if seed:
        parser.add_argument('--seed', type=int, default=0)
    parser.add_argument(
        '--set',
        nargs='*',
        default=[],
        metavar='KEY=VALUE',
        help='override preset keys, e.g. epochs=5 linear_epochs=10')
    if cfg_options:
        from mmengine.config import DictAction
        parser.add_argument(
            '--cfg-options',
            nargs='+',
            action=DictAction,
            default={},
            metavar='KEY=VALUE',
            help='override keys of every pre-training config '
            '(configs/study), e.g. optim_wrapper.optimizer.lr=5e-4')
    return parser


def setup(parser: argparse.ArgumentParser,
          args: argparse.Namespace) -> Tuple[dict, torch.device]:
    """The preset (with ``--set``, and the scale of its ``configs/study``
    files) and the device of parsed ``args``; a bad preset key ends the
    script with the parser's error."""
    from study_configs import study_preset
    quiet_logging()
    try:
        p = study_preset(args.preset, parse_set(args.set),
                         getattr(args, 'cfg_options', None))
    except ValueError as err:
        parser.error(str(err))
    device = torch.device(
        args.device or ('cuda' if torch.cuda.is_available() else 'cpu'))
    if device.type == 'cuda':
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    set_threads(args.threads, device)
    return p, device


def load_weights(path: str) -> dict:
    """``backbones.pth`` of ``pretrain.py``: name -> backbone state dict."""
    from folk.engine.checkpoint import safe_torch_load
    return safe_torch_load(path)
