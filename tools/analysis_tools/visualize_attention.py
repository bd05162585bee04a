"""The [CLS] self-attention of a FOLK / MFM ViT, per head (as in DINO).

For every image, one row: the image, then for every head of the last
transformer layer the attention of the [CLS] query over the patch tokens
(softmax of ``q_cls . k_patch / sqrt(d)``, on the patch grid, drawn at the
image size with nearest-neighbour upsampling, each map scaled to its own
maximum), and the mean over heads. By default the EMA teacher of a FOLK
checkpoint (DINO draws the teacher) and the student of an MFM one.

Usage::

    python tools/analysis_tools/visualize_attention.py CONFIG CKPT \
        [IMAGE ...] [--num 3] [--weights teacher|student] [--out x.png]
"""
import argparse
import functools
import os.path as osp
from typing import Dict, Optional, Sequence, Tuple

import cv2
import numpy as np
import torch

from folk.evaluation import load_pretrained_model
from folk.visualization import (add_image_args, add_model_args,
                                add_output_args, check_output, default_images)
from folk.visualization import figure_inches as _figure_inches
from folk.visualization import label_row, load_rgb01, panel_grid, save_figure

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
DEFAULT_DATA_ROOT = osp.join(REPO, '..', 'shared', 'data', 'imagenette128')
#: Figure margins in inches: left (row labels) and top (column titles).
LABEL_W, TITLE_H = 1.0, 0.5


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description='Draw the [CLS] attention of a FOLK / MFM ViT per head.')
    add_model_args(parser)
    add_image_args(
        parser,
        DEFAULT_DATA_ROOT,
        num=3,
        size_help='image size (default: the backbone img_size)')
    parser.add_argument(
        '--weights',
        choices=('teacher', 'student'),
        default=None,
        help='default: teacher for FOLK, student for MFM')
    add_output_args(parser, 'work_dirs/attention.png', panel=1.2)
    parser.add_argument('--device', default=None, help='cpu or cuda')
    return parser.parse_args(argv)


def select_backbone(model, weights: Optional[str]) -> Tuple[object, str]:
    """The teacher's or the student's backbone and its name."""
    teacher = getattr(model, 'teacher', None)
    weights = weights or ('teacher' if teacher is not None else 'student')
    if weights == 'teacher':
        if teacher is None:
            raise ValueError('an MFM model has no teacher: use --weights '
                             'student')
        return teacher.module.backbone, weights
    return model.backbone, weights


@torch.no_grad()
def cls_attention(backbone, images: torch.Tensor) -> torch.Tensor:
    """[CLS]-to-patch attention of the last layer, (B, heads, h, w).

    The last layer's attention module is run as usual; its
    ``scaled_dot_product_attention`` call is observed to recompute the
    attention weights from its ``q`` and ``k``.
    """
    layers = getattr(backbone, 'layers', None)
    if layers is None or not hasattr(layers[-1], 'attn') or \
            not getattr(backbone, 'with_cls_token', False):
        raise ValueError('attention maps need an MMPretrain '
                         'VisionTransformer backbone with a [CLS] token, got '
                         f'{type(backbone).__name__}')
    attn = layers[-1].attn
    original = attn.scaled_dot_product_attention
    scale = getattr(original, 'keywords', {}).get('scale')
    captured = {}

    def observe(q, k, v, *args, **kwargs):
        s = scale if scale is not None else q.shape[-1]**-0.5
        captured['attn'] = torch.softmax(
            (q.float() @ k.float().transpose(-2, -1)) * s, dim=-1)
        return original(q, k, v, *args, **kwargs)

    attn.scaled_dot_product_attention = observe
    try:
        backbone(images)
    finally:
        attn.scaled_dot_product_attention = original
    weights = captured['attn']  # (B, heads, 1 + h*w, 1 + h*w)
    b, heads = weights.shape[:2]
    patch = backbone.patch_embed.projection.stride
    h, w = images.shape[-2] // patch[0], images.shape[-1] // patch[1]
    start = backbone.num_extra_tokens
    return weights[:, :, 0, start:].reshape(b, heads, h, w)


def figure_inches(num_rows: int, num_cols: int,
                  panel: float) -> Tuple[float, float]:
    """(width, height) of the figure in inches."""
    return _figure_inches(num_rows, num_cols, panel, LABEL_W, TITLE_H)


def render(model,
           paths: Sequence[str],
           out: str,
           size: int,
           weights: Optional[str] = None,
           panel: float = 1.2,
           dpi: int = 72,
           colors: int = 0) -> Dict:
    """Draw one row per image into ``out``; return what was drawn."""
    backbone, weights = select_backbone(model, weights)
    device = next(model.parameters()).device
    pre = model.data_preprocessor
    imgs = np.stack([load_rgb01(p, size) for p in paths])  # (B, H, W, 3)
    x = torch.from_numpy(imgs).permute(0, 3, 1, 2).to(device) * 255.
    x = (x - pre.mean.to(device)) / pre.std.to(device)  # RGB mean / std
    maps = cls_attention(backbone, x).cpu()  # (B, heads, h, w)
    heads = maps.shape[1]
    columns = ['image'] + [f'head {i + 1}' for i in range(heads)] + ['mean']
    fig, axes, (fig_w, fig_h) = panel_grid(columns, len(paths), panel, dpi,
                                           LABEL_W, TITLE_H)
    upsample = functools.partial(
        cv2.resize, dsize=(size, size), interpolation=cv2.INTER_NEAREST)
    for i, path in enumerate(paths):
        panels = [imgs[i]] + [m.numpy() for m in maps[i]] + \
            [maps[i].mean(0).numpy()]
        for j, ax in enumerate(axes[i]):
            if j == 0:
                ax.imshow(panels[0])
            else:
                m = upsample(panels[j])
                ax.imshow(
                    m / max(float(m.max()), 1e-12),
                    cmap='inferno',
                    vmin=0,
                    vmax=1)
        parent = osp.basename(osp.dirname(osp.abspath(path)))
        label_row(axes[i][0], parent[:12])
    fig.suptitle(
        f'{weights} [CLS] attention, last layer',
        fontsize=8,
        x=LABEL_W / fig_w,
        ha='left',
        y=1 - 0.02 / fig_h,
        va='top')
    save_figure(fig, out, dpi, colors)
    return dict(
        out=out,
        maps=maps,
        weights=weights,
        columns=columns,
        pixels=(int(round(fig_h * dpi)), int(round(fig_w * dpi))))


def main(argv: Optional[Sequence[str]] = None) -> Dict:
    args = parse_args(argv)
    check_output(args.out, args.overwrite)
    model = load_pretrained_model(args.config, args.checkpoint, args.device)
    paths = args.images or default_images(args.data_root, args.num)
    size = args.size
    if size is None:
        img_size = getattr(model.backbone, 'img_size', 224)
        size = int(img_size[0] if isinstance(img_size, (tuple,
                                                        list)) else img_size)
    info = render(model, paths, args.out, size, args.weights, args.panel,
                  args.dpi, args.colors)
    print(f"wrote {args.out}: {len(paths)} rows x {len(info['columns'])} "
          f"columns ({info['weights']}), "
          f"{info['pixels'][1]}x{info['pixels'][0]} px")
    return info


if __name__ == '__main__':
    main()
