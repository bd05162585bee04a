"""Draw FOLK's and MFM's frequency filters on real images (PNG grid).

For every image and every filter - Com and RCom at ratios 0.005 / 0.01 /
0.05 (FOLK) and MFM's low-pass and high-pass with the radius scaled to the
image size (:func:`folk.frequency.mfm_radius`, 16 bins at 224 px) - one row
with four columns: the original image, its log-magnitude spectrum
(channel-averaged, ``fftshift``-ed: DC in the centre), the keep mask
(``fftshift``-ed, white = kept) and the filtered image
``clip(real(ifft2(fft2(x) * keep)), 0, 1)``.

Usage::

    python tools/visualize_frequency_masks.py                  # 3 val images
    python tools/visualize_frequency_masks.py a.jpg b.png --size 224 \
        --out docs/img/frequency_masks.png
"""
import argparse
import os
import os.path as osp
from typing import Dict, List, Optional, Sequence, Tuple

import cv2
import numpy as np
import torch

from folk.frequency import filter_images, kind_to_index, mfm_radius

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))

RATIOS = (0.005, 0.01, 0.05)
COLUMNS = ('original', 'log |FFT| (shifted)', 'keep mask (shifted)',
           'filtered')
DEFAULT_DATA_ROOT = osp.join(REPO, '..', 'shared', 'data', 'imagenette128')
DEFAULT_OUT = osp.join(REPO, 'docs', 'img', 'frequency_masks.png')
#: Figure margins in inches: left (row labels) and top (column titles).
LABEL_W, TITLE_H = 1.3, 0.35


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description='Draw Com / RCom / low-pass / high-pass frequency masks.')
    parser.add_argument(
        'images',
        nargs='*',
        help='image files (default: the first --num images of val.txt in '
        '--data-root)')
    parser.add_argument(
        '--data-root',
        default=DEFAULT_DATA_ROOT,
        help='Imagenette folder with val.txt (default: '
        '../shared/data/imagenette128 beside the repo)')
    parser.add_argument(
        '--num',
        type=int,
        default=3,
        help='images taken from val.txt (default: 3)')
    parser.add_argument(
        '--size',
        type=int,
        default=None,
        help='resize every image to size x size first')
    parser.add_argument(
        '--out',
        default=DEFAULT_OUT,
        help='output PNG (default: docs/img/'
        'frequency_masks.png)')
    parser.add_argument(
        '--panel',
        type=float,
        default=1.25,
        help='panel size in inches (default: 1.25)')
    parser.add_argument(
        '--dpi', type=int, default=72, help='PNG resolution (default: 72)')
    parser.add_argument(
        '--colors',
        type=int,
        default=256,
        help='save as a palette PNG with this many colours '
        '(smaller file); 0 keeps full colour (default: 256)')
    return parser.parse_args(argv)


def default_images(data_root: str, num: int) -> List[str]:
    ann = osp.join(data_root, 'val.txt')
    if not osp.isfile(ann):
        raise FileNotFoundError(
            f'{ann} not found: give image paths or --data-root')
    with open(ann) as f:
        rel = [line.split()[0] for line in f if line.strip()]
    return [osp.join(data_root, r) for r in rel[:num]]


def load_rgb01(path: str, size: Optional[int]) -> np.ndarray:
    """(H, W, 3) float32 RGB in [0, 1], optionally resized to size x size."""
    bgr = cv2.imread(path, cv2.IMREAD_COLOR)
    if bgr is None:
        raise FileNotFoundError(f'cannot read image {path}')
    if size is not None:
        shrink = size < min(bgr.shape[:2])
        bgr = cv2.resize(
            bgr, (size, size),
            interpolation=cv2.INTER_AREA if shrink else cv2.INTER_CUBIC)
    rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
    return rgb.astype(np.float32) / 255.


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
    return LABEL_W + len(COLUMNS) * panel, TITLE_H + num_rows * panel


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
        spec = torch.fft.fft2(x)[0].abs().mean(0).numpy()
        log_spec = np.fft.fftshift(np.log1p(spec))
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

    fig_w, fig_h = figure_inches(len(rows), panel)
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(
        len(rows),
        len(COLUMNS),
        figsize=(fig_w, fig_h),
        dpi=dpi,
        squeeze=False)
    fig.subplots_adjust(
        left=LABEL_W / fig_w,
        right=1 - 0.02 / fig_w,
        top=1 - TITLE_H / fig_h,
        bottom=0.02 / fig_h,
        wspace=0.04,
        hspace=0.04)
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
            ax.set_xticks([])
            ax.set_yticks([])
            if i == 0:
                ax.set_title(COLUMNS[j], fontsize=8)
        axes[i][0].set_ylabel(
            f"{row['name']}\n{row['label']}\nkeeps "
            f"{100 * row['kept']:.1f}%",
            fontsize=7,
            rotation=0,
            ha='right',
            va='center',
            labelpad=4)
    os.makedirs(osp.dirname(osp.abspath(out)), exist_ok=True)
    fig.savefig(out, dpi=dpi)
    plt.close(fig)
    if colors:
        from PIL import Image
        with Image.open(out) as im:
            rgb = im.convert('RGB')
        rgb.quantize(
            colors=colors,
            method=Image.Quantize.MEDIANCUT,
            dither=Image.Dither.NONE).save(
                out, optimize=True)
    return dict(
        out=out,
        rows=rows,
        inches=(fig_w, fig_h),
        dpi=dpi,
        pixels=(int(round(fig_h * dpi)), int(round(fig_w * dpi))))


def main(argv: Optional[Sequence[str]] = None) -> Dict:
    args = parse_args(argv)
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
