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
import os
import os.path as osp
from typing import Dict, Optional, Sequence, Tuple

import cv2
import matplotlib

matplotlib.use('Agg')
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

from folk.evaluation import load_pretrained_model  # noqa: E402

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
DEFAULT_DATA_ROOT = osp.join(REPO, '..', 'shared', 'data', 'imagenette128')
#: Figure margins in inches: left (row labels) and top (column titles).
LABEL_W, TITLE_H = 1.0, 0.5


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description='Draw the [CLS] attention of a FOLK / MFM ViT per head.')
    parser.add_argument('config', help='pre-training config')
    parser.add_argument('checkpoint', help='pre-training checkpoint')
    parser.add_argument(
        'images',
        nargs='*',
        help='image files (default: one val image of each of the first '
        '--num classes in --data-root)')
    parser.add_argument(
        '--data-root',
        default=DEFAULT_DATA_ROOT,
        help='folder with val.txt (default: ../shared/data/'
        'imagenette128 beside the repository)')
    parser.add_argument(
        '--num',
        type=int,
        default=3,
        help='images taken from val.txt (default: 3)')
    parser.add_argument(
        '--size',
        type=int,
        default=None,
        help='image size (default: the backbone img_size)')
    parser.add_argument(
        '--weights',
        choices=('teacher', 'student'),
        default=None,
        help='default: teacher for FOLK, student for MFM')
    parser.add_argument(
        '--out', default='work_dirs/attention.png', help='output PNG')
    parser.add_argument(
        '--panel',
        type=float,
        default=1.2,
        help='panel size in inches (default: 1.2)')
    parser.add_argument(
        '--dpi', type=int, default=72, help='PNG resolution (default: 72)')
    parser.add_argument(
        '--colors',
        type=int,
        default=256,
        help='save as a palette PNG with this many colours '
        '(smaller file); 0 keeps full colour (default: 256)')
    parser.add_argument('--device', default=None, help='cpu or cuda')
    return parser.parse_args(argv)


def quantize(path: str, colors: int) -> None:
    """Rewrite the PNG at ``path`` with a ``colors``-colour palette."""
    from PIL import Image
    with Image.open(path) as im:
        rgb = im.convert('RGB')
    rgb.quantize(
        colors=colors,
        method=Image.Quantize.MEDIANCUT,
        dither=Image.Dither.NONE).save(
            path, optimize=True)


def default_images(data_root: str, num: int):
    """The first val image of each of the first ``num`` classes."""
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


def load_rgb01(path: str, size: int) -> np.ndarray:
    """(size, size, 3) float32 RGB in [0, 1]."""
    bgr = cv2.imread(path, cv2.IMREAD_COLOR)
    if bgr is None:
        raise FileNotFoundError(f'cannot read image {path}')
    bgr = cv2.resize(bgr, (size, size), interpolation=cv2.INTER_AREA)
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB).astype(np.float32) / 255.


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
    return LABEL_W + num_cols * panel, TITLE_H + num_rows * panel


def render(model,
           paths: Sequence[str],
           out: str,
           size: int,
           weights: Optional[str] = None,
           panel: float = 1.2,
           dpi: int = 72) -> Dict:
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
    fig_w, fig_h = figure_inches(len(paths), len(columns), panel)
    fig, axes = plt.subplots(
        len(paths),
        len(columns),
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
            ax.set_xticks([])
            ax.set_yticks([])
            if i == 0:
                ax.set_title(columns[j], fontsize=8)
        parent = osp.basename(osp.dirname(osp.abspath(path)))
        axes[i][0].set_ylabel(
            parent[:12],
            fontsize=7,
            rotation=0,
            ha='right',
            va='center',
            labelpad=4)
    fig.suptitle(
        f'{weights} [CLS] attention, last layer',
        fontsize=8,
        x=LABEL_W / fig_w,
        ha='left',
        y=1 - 0.02 / fig_h,
        va='top')
    os.makedirs(osp.dirname(osp.abspath(out)), exist_ok=True)
    fig.savefig(out, dpi=dpi)
    plt.close(fig)
    return dict(
        out=out,
        maps=maps,
        weights=weights,
        columns=columns,
        pixels=(int(round(fig_h * dpi)), int(round(fig_w * dpi))))


def main(argv: Optional[Sequence[str]] = None) -> Dict:
    args = parse_args(argv)
    model = load_pretrained_model(args.config, args.checkpoint, args.device)
    paths = args.images or default_images(args.data_root, args.num)
    size = args.size
    if size is None:
        img_size = getattr(model.backbone, 'img_size', 224)
        size = int(img_size[0] if isinstance(img_size, (tuple,
                                                        list)) else img_size)
    info = render(model, paths, args.out, size, args.weights, args.panel,
                  args.dpi)
    if args.colors:
        quantize(args.out, args.colors)
    print(f"wrote {args.out}: {len(paths)} rows x {len(info['columns'])} "
          f"columns ({info['weights']}), "
          f"{info['pixels'][1]}x{info['pixels'][0]} px")
    return info


if __name__ == '__main__':
    main()
