"""Draw FOLK's and MFM's frequency filters on real images (PNG grid).

For every image and every filter - Com and RCom at ratios 0.005 / 0.01 /
0.05 (FOLK) and MFM's low-pass and high-pass with the radius scaled to the
image size (:func:`folk.frequency.mfm_radius`, 16 bins at 224 px) - one row
with four columns: the original image, its log-magnitude spectrum
(channel-averaged, ``fftshift``-ed: DC in the centre), the keep mask
(``fftshift``-ed, white = kept) and the filtered image
``clip(real(ifft2(fft2(x) * keep)), 0, 1)``.

Usage::

    # 3 val images -> work_dirs/frequency_masks.png
    python tools/visualize_frequency_masks.py
    python tools/visualize_frequency_masks.py a.jpg b.png --size 224

The figure of the docs (``docs/img/frequency_masks.png``) is the first
three images of ``val.txt`` at 224 px; redrawing it needs ``--overwrite``,
as the tools never replace a file that git tracks by default.
"""
import argparse
import os.path as osp
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch

from folk.frequency import filter_images, kind_to_index, mfm_radius
from folk.visualization import (add_image_args, add_output_args, check_output,
                                default_images)
from folk.visualization import figure_inches as _figure_inches
from folk.visualization import (label_row, load_rgb01, log_spectrum,
                                panel_grid, save_figure)

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))

RATIOS = (0.005, 0.01, 0.05)
COLUMNS = ('original', 'log |FFT| (shifted)', 'keep mask (shifted)',
           'filtered')
DEFAULT_DATA_ROOT = osp.join(REPO, '..', 'shared', 'data', 'imagenette128')
DEFAULT_OUT = 'work_dirs/frequency_masks.png'
#: Figure margins in inches: left (row labels) and top (column titles).
LABEL_W, TITLE_H = 1.3, 0.35


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description='Draw Com / RCom / low-pass / high-pass frequency masks.')
    add_image_args(parser, DEFAULT_DATA_ROOT, num=3)
    add_output_args(parser, DEFAULT_OUT, panel=1.25)
    return parser.parse_args(argv)


def filter_list(height: int, width: int) -> List[Tuple[str, float, str]]:
    """(kind, param, label) of every row of one image."""
    radius = mfm_radius(min(height, width))
    names = dict(com='Com', rcom='RCom')
    rows = [(k, r, f'{names[k]} {100 * r:g}%') for k in ('com', 'rcom')
            for r in RATIOS]
    rows += [('lowpass', radius, f'low-pass r={radius:.3g}'),
             ('highpass', radius, f'high-pass r={radius:.3g}')]
    return rows


def figure_inches(num_rows: int, panel: float) -> Tuple[float, float]:
    """(width, height) of the figure in inches."""
    return _figure_inches(num_rows, len(COLUMNS), panel, LABEL_W, TITLE_H)


def image_name(path: str, index: int) -> str:
    """Short row label: running number and parent folder (the class)."""
    parent = osp.basename(osp.dirname(osp.abspath(path)))
    return f'#{index + 1} {parent[:14]}'


def render(paths: Sequence[str],
           out: str,
           size: Optional[int] = None,
           panel: float = 1.25,
           dpi: int = 72,
           colors: int = 256) -> Dict:
    """Draw the grid for ``paths`` into ``out``; return what was drawn."""
    images = [load_rgb01(p, size) for p in paths]
    rows = []
    for index, (path, img) in enumerate(zip(paths, images)):
        h, w = img.shape[:2]
        x = torch.from_numpy(img).permute(2, 0, 1)[None].contiguous()
        log_spec = log_spectrum(x[0])
        for kind, param, label in filter_list(h, w):
            filtered, keep = filter_images(x, kind_to_index([kind]),
                                           torch.tensor([param]))
            rows.append(
                dict(
                    name=image_name(path, index),
                    path=path,
                    label=label,
                    kind=kind,
                    param=float(param),
                    image=img,
                    spectrum=log_spec,
                    keep=np.fft.fftshift(keep[0].numpy()),
                    kept=float(keep.float().mean()),
                    filtered=filtered[0].permute(1, 2, 0).numpy()))

    fig, axes, (fig_w, fig_h) = panel_grid(COLUMNS, len(rows), panel, dpi,
                                           LABEL_W, TITLE_H)
    for i, row in enumerate(rows):
        panels = (row['image'], row['spectrum'], row['keep'], row['filtered'])
        for j, ax in enumerate(axes[i]):
            if j == 1:
                ax.imshow(panels[j], cmap='magma')
            elif j == 2:
                ax.imshow(
                    panels[j],
                    cmap='gray',
                    vmin=0,
                    vmax=1,
                    interpolation='nearest')
            else:
                ax.imshow(np.clip(panels[j], 0, 1))
        label_row(
            axes[i][0], f"{row['name']}\n{row['label']}\nkeeps "
            f"{100 * row['kept']:.1f}%")
    save_figure(fig, out, dpi, colors)
    return dict(
        out=out,
        rows=rows,
        inches=(fig_w, fig_h),
        dpi=dpi,
        pixels=(int(round(fig_h * dpi)), int(round(fig_w * dpi))))


def main(argv: Optional[Sequence[str]] = None) -> Dict:
    args = parse_args(argv)
    check_output(args.out, args.overwrite)
    paths = args.images or default_images(args.data_root, args.num)
    info = render(
        paths,
        args.out,
        size=args.size,
        panel=args.panel,
        dpi=args.dpi,
        colors=args.colors)
    kb = osp.getsize(args.out) / 1024
    print(f"wrote {args.out}: {len(info['rows'])} rows x {len(COLUMNS)} "
          f"columns, {info['pixels'][1]}x{info['pixels'][0]} px, "
          f'{kb:.0f} KB')
    return info


if __name__ == '__main__':
    main()
