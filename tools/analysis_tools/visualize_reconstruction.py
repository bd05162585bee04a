"""What a FOLK / MFM checkpoint reconstructs from a frequency-filtered image.

For every image and every filter - FOLK's Com and RCom at ``--ratio`` and
MFM's low-pass and high-pass (radius :func:`folk.frequency.mfm_radius`,
16 bins at 224 px) - one row with five columns:

1. the original image;
2. its log-magnitude spectrum (channel mean, ``fftshift``-ed: DC centred);
3. the filtered image the student saw, ``real(ifft2(fft2(x) * keep))``;
4. the reconstruction: the student's decoder output (``neck``) supplies
   the frequencies the filter removed, the input keeps the others,
   ``real(ifft2(fft2(x) * keep + fft2(pred) * (1 - keep)))``. This is what
   the frequency loss trains: it compares ``pred`` with the image on the
   removed frequencies only, so the decoder's output on the kept
   frequencies is unconstrained and not shown;
5. the log-magnitude spectrum of the reconstruction.

Usage::

    python tools/analysis_tools/visualize_reconstruction.py CONFIG CKPT \
        [IMAGE ...] [--num 2] [--ratio 0.01] [--out docs/img/x.png]
"""
import argparse
import os.path as osp
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch

from folk.evaluation import load_pretrained_model
from folk.frequency import filter_images, kind_to_index, mfm_radius
from folk.visualization import (add_image_args, add_model_args,
                                add_output_args, check_output, default_images)
from folk.visualization import figure_inches as _figure_inches
from folk.visualization import (label_row, load_rgb01, log_spectrum,
                                panel_grid, save_figure)

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
DEFAULT_DATA_ROOT = osp.join(REPO, '..', 'shared', 'data', 'imagenette128')
COLUMNS = ('original', 'log |FFT|', 'student input', 'reconstruction',
           'log |FFT| (rec.)')
#: Figure margins in inches: left (row labels) and top (column titles).
LABEL_W, TITLE_H = 1.3, 0.35


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description='Draw the reconstructions of a FOLK / MFM checkpoint.')
    add_model_args(parser)
    add_image_args(
        parser,
        DEFAULT_DATA_ROOT,
        num=2,
        size_help='image size (default: the backbone img_size)')
    parser.add_argument(
        '--ratio',
        type=float,
        default=0.01,
        help='Com / RCom ratio (default: 0.01)')
    add_output_args(parser, 'work_dirs/reconstruction.png', panel=1.2)
    parser.add_argument('--device', default=None, help='cpu or cuda')
    return parser.parse_args(argv)


def filter_rows(size: int, ratio: float) -> List[Tuple[str, float, str]]:
    """(kind, param, label) of the filters drawn for every image."""
    radius = mfm_radius(size)
    return [('com', ratio, f'Com {100 * ratio:g}%'),
            ('rcom', ratio, f'RCom {100 * ratio:g}%'),
            ('lowpass', radius, f'low-pass r={radius:.3g}'),
            ('highpass', radius, f'high-pass r={radius:.3g}')]


def figure_inches(num_rows: int, panel: float) -> Tuple[float, float]:
    """(width, height) of the figure in inches."""
    return _figure_inches(num_rows, len(COLUMNS), panel, LABEL_W, TITLE_H)


@torch.no_grad()
def reconstruct(model, x01: torch.Tensor, kind: str,
                param: float) -> Dict[str, torch.Tensor]:
    """Filter ``x01`` (1, 3, H, W), run the student, compose the result."""
    device = next(model.parameters()).device
    pre = model.data_preprocessor
    mean = pre.mean.to(device) / 255.  # (3, 1, 1), RGB order
    std = pre.std.to(device) / 255.
    x01 = x01.to(device)
    filtered, keep = filter_images(x01, kind_to_index([kind]),
                                   torch.tensor([param]))
    _, fmap = model.encode((filtered - mean) / std)
    pred01 = model.neck(fmap) * std + mean  # (1, 3, H, W)
    keep_f = keep[:, None].float()  # (1, 1, H, W)
    spectrum = torch.fft.fft2(x01) * keep_f + \
        torch.fft.fft2(pred01.float()) * (1 - keep_f)
    rec = torch.fft.ifft2(spectrum).real
    return dict(
        filtered=filtered[0].cpu(),
        keep=keep[0].cpu(),
        reconstruction=rec[0].cpu())


def render(model,
           paths: Sequence[str],
           out: str,
           size: int,
           ratio: float = 0.01,
           panel: float = 1.2,
           dpi: int = 72,
           colors: int = 0) -> Dict:
    """Draw the grid for ``paths`` into ``out``; return what was drawn."""
    rows = []
    for path in paths:
        img = load_rgb01(path, size)
        x01 = torch.from_numpy(img).permute(2, 0, 1)[None].contiguous()
        for kind, param, label in filter_rows(size, ratio):
            r = reconstruct(model, x01, kind, param)
            rows.append(
                dict(
                    path=path,
                    kind=kind,
                    param=float(param),
                    label=label,
                    kept=float(r['keep'].float().mean()),
                    panels=(img, log_spectrum(x01[0]),
                            r['filtered'].permute(1, 2, 0).numpy(),
                            r['reconstruction'].permute(1, 2, 0).numpy(),
                            log_spectrum(r['reconstruction']))))
    fig, axes, (fig_w, fig_h) = panel_grid(COLUMNS, len(rows), panel, dpi,
                                           LABEL_W, TITLE_H)
    for i, row in enumerate(rows):
        for j, ax in enumerate(axes[i]):
            if j in (1, 4):
                ax.imshow(row['panels'][j], cmap='magma')
            else:
                ax.imshow(np.clip(row['panels'][j], 0, 1))
        parent = osp.basename(osp.dirname(osp.abspath(row['path'])))
        label_row(
            axes[i][0],
            f"{parent[:14]}\n{row['label']}\nkeeps {100 * row['kept']:.1f}%")
    save_figure(fig, out, dpi, colors)
    return dict(
        out=out,
        rows=rows,
        pixels=(int(round(fig_h * dpi)), int(round(fig_w * dpi))))


def backbone_size(model, default: int = 224) -> int:
    """Input size the backbone was built for (ViT ``img_size``)."""
    size = getattr(model.backbone, 'img_size', None)
    if isinstance(size, (tuple, list)):
        size = size[0]
    return int(size) if size else default


def main(argv: Optional[Sequence[str]] = None) -> Dict:
    args = parse_args(argv)
    check_output(args.out, args.overwrite)
    model = load_pretrained_model(args.config, args.checkpoint, args.device)
    paths = args.images or default_images(args.data_root, args.num)
    size = args.size or backbone_size(model)
    info = render(model, paths, args.out, size, args.ratio, args.panel,
                  args.dpi, args.colors)
    print(f"wrote {args.out}: {len(info['rows'])} rows x {len(COLUMNS)} "
          f"columns, {info['pixels'][1]}x{info['pixels'][0]} px")
    return info


if __name__ == '__main__':
    main()
