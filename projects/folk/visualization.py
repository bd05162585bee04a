"""Shared pieces of the picture tools: image loading, the panel grid, PNGs.

Used by ``tools/visualize_frequency_masks.py`` and
``tools/analysis_tools/visualize_{attention,reconstruction}.py``: each draws
a grid of square panels (one row per image or per image and filter, a label
left of each row, column titles on top) and saves it as a small PNG. Their
command lines share :func:`add_model_args`, :func:`add_image_args` and
:func:`add_output_args`; none replaces a file that git tracks unless told
to (:func:`check_output`).
Matplotlib is imported only when a figure is drawn (``Agg`` backend).
"""
import argparse
import os
import os.path as osp
import subprocess
from typing import Dict, List, Optional, Sequence, Tuple

import cv2
import numpy as np
import torch


def add_model_args(parser: argparse.ArgumentParser) -> None:
    """Add the positional ``config`` and ``checkpoint`` of a pre-training
    run (call before :func:`add_image_args`: the images follow them)."""
    parser.add_argument('config', help='pre-training config')
    parser.add_argument('checkpoint', help='pre-training checkpoint')


SIZE_HELP = 'resize every image to size x size first'


def add_image_args(parser: argparse.ArgumentParser,
                   data_root: str,
                   num: int = 3,
                   size_help: str = SIZE_HELP) -> None:
    """Add the images drawn: positional ``images`` or the first val image
    of each of ``--num`` classes of ``--data-root``; and ``--size``."""
    parser.add_argument(
        'images',
        nargs='*',
        help='image files (default: one val image of each of the first '
        '--num classes in --data-root)')
    parser.add_argument(
        '--data-root',
        default=data_root,
        help='folder with val.txt (default: ../shared/data/imagenette128 '
        'beside the repository)')
    parser.add_argument(
        '--num',
        type=int,
        default=num,
        help=f'images taken from val.txt (default: {num})')
    parser.add_argument('--size', type=int, default=None, help=size_help)


def add_output_args(parser: argparse.ArgumentParser, out: str,
                    panel: float) -> None:
    """Add ``--out`` (default ``out``), ``--overwrite`` and the figure
    options of :func:`add_figure_args`."""
    parser.add_argument(
        '--out', default=out, help=f'output PNG (default: {out})')
    parser.add_argument(
        '--overwrite',
        action='store_true',
        help='replace --out even if git tracks it (e.g. a figure of the '
        'docs)')
    add_figure_args(parser, panel=panel)


def tracked_by_git(path: str) -> bool:
    """Whether ``path`` is a file that git tracks (False without git)."""
    if not osp.isfile(path):
        return False
    try:
        done = subprocess.run(
            ['git', 'ls-files', '--error-unmatch',
             osp.basename(path)],
            cwd=osp.dirname(osp.abspath(path)),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            timeout=10)
    except (OSError, subprocess.SubprocessError):
        return False
    return done.returncode == 0


def check_output(path: str, overwrite: bool = False) -> str:
    """``path``, unless it is a file that git tracks and ``overwrite`` is
    not set: a picture tool never replaces a committed figure by default.

    Raises:
        FileExistsError: Naming the file and the option that allows it.
    """
    if not overwrite and tracked_by_git(path):
        raise FileExistsError(
            f'{path} is tracked by git; write elsewhere (--out) or pass '
            '--overwrite to replace it')
    return path


def add_figure_args(parser: argparse.ArgumentParser,
                    panel: float = 1.2) -> None:
    """Add ``--panel`` (inches), ``--dpi`` and ``--colors`` to ``parser``."""
    parser.add_argument(
        '--panel',
        type=float,
        default=panel,
        help=f'panel size in inches (default: {panel:g})')
    parser.add_argument(
        '--dpi', type=int, default=72, help='PNG resolution (default: 72)')
    parser.add_argument(
        '--colors',
        type=int,
        default=256,
        help='save as a palette PNG with this many colours '
        '(smaller file); 0 keeps full colour (default: 256)')


def default_images(data_root: str, num: int) -> List[str]:
    """The first image of each of the first ``num`` classes of
    ``data_root/val.txt`` (``relative/path label`` lines)."""
    ann = osp.join(data_root, 'val.txt')
    if not osp.isfile(ann):
        raise FileNotFoundError(
            f'{ann} not found: give image paths or --data-root')
    picked: Dict[str, str] = {}
    with open(ann) as f:
        for line in f:
            parts = line.split()
            if len(parts) >= 2 and parts[1] not in picked:
                picked[parts[1]] = osp.join(data_root, parts[0])
            if len(picked) == num:
                break
    return list(picked.values())


def load_rgb01(path: str, size: Optional[int] = None) -> np.ndarray:
    """(H, W, 3) float32 RGB in [0, 1], resized to ``size`` x ``size``
    (area interpolation to shrink, bicubic to enlarge) when given."""
    bgr = cv2.imread(path, cv2.IMREAD_COLOR)
    if bgr is None:
        raise FileNotFoundError(f'cannot read image {path}')
    if size is not None:
        shrink = size < min(bgr.shape[:2])
        bgr = cv2.resize(
            bgr, (size, size),
            interpolation=cv2.INTER_AREA if shrink else cv2.INTER_CUBIC)
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB).astype(np.float32) / 255.


def log_spectrum(x01: torch.Tensor) -> np.ndarray:
    """(H, W) log-magnitude spectrum of a (3, H, W) image, averaged over
    channels and ``fftshift``-ed (DC in the centre)."""
    spec = torch.fft.fft2(x01.float()).abs().mean(0)
    return np.fft.fftshift(np.log1p(spec.numpy()))


def figure_inches(num_rows: int, num_cols: int, panel: float, label_w: float,
                  title_h: float) -> Tuple[float, float]:
    """(width, height) in inches of a grid of ``panel``-inch squares with
    ``label_w`` inches for row labels and ``title_h`` for column titles."""
    return label_w + num_cols * panel, title_h + num_rows * panel


def panel_grid(columns: Sequence[str], num_rows: int, panel: float, dpi: int,
               label_w: float, title_h: float):
    """A figure of ``num_rows`` x ``len(columns)`` bare panels with the
    column titles on the first row.

    Returns:
        tuple: ``(fig, axes, (width, height))``; ``axes[i][j]`` is row i,
        column j; the size is in inches.
    """
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    fig_w, fig_h = figure_inches(num_rows, len(columns), panel, label_w,
                                 title_h)
    fig, axes = plt.subplots(
        num_rows, len(columns), figsize=(fig_w, fig_h), dpi=dpi, squeeze=False)
    fig.subplots_adjust(
        left=label_w / fig_w,
        right=1 - 0.02 / fig_w,
        top=1 - title_h / fig_h,
        bottom=0.02 / fig_h,
        wspace=0.04,
        hspace=0.04)
    for row in axes:
        for ax in row:
            ax.set_xticks([])
            ax.set_yticks([])
    for ax, title in zip(axes[0], columns):
        ax.set_title(title, fontsize=8)
    return fig, axes, (fig_w, fig_h)


def label_row(ax, text: str) -> None:
    """Write ``text`` left of the row that starts with panel ``ax``."""
    ax.set_ylabel(
        text, fontsize=7, rotation=0, ha='right', va='center', labelpad=4)


def save_figure(fig, out: str, dpi: int, colors: int = 0) -> None:
    """Save ``fig`` to ``out`` (folders created) and close it; with
    ``colors`` > 0 rewrite the PNG with a palette of that many colours
    (median cut, no dithering: a few times smaller for these grids)."""
    import matplotlib.pyplot as plt
    from PIL import Image

    os.makedirs(osp.dirname(osp.abspath(out)), exist_ok=True)
    fig.savefig(out, dpi=dpi)
    plt.close(fig)
    if colors:
        with Image.open(out) as im:
            rgb = im.convert('RGB')
        rgb.quantize(
            colors=colors,
            method=Image.Quantize.MEDIANCUT,
            dither=Image.Dither.NONE).save(
                out, optimize=True)
