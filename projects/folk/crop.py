"""Resized crops and flips of uint8 images, on any device.

FOLK's data workers can leave the two views' crop and resize to the model's
device (``FOLKViews(crop='device')``): a worker then decodes the image once,
draws every view's crop box and flip with MMPretrain's
``RandomResizedCrop`` / MMCV's ``RandomFlip`` (the same random calls as the
CPU path), and passes the decoded image with those parameters; the data
preprocessor cuts the views here. At two views per image the bicubic
resize was most of what the workers still did (docs/data_pipeline.md).

The arithmetic is Pillow's bicubic resampling, which MMPretrain's
``RandomResizedCrop(backend='pillow', interpolation='bicubic')`` calls
through ``mmcv.imresize``: antialiased (the kernel is widened by the
down-scaling factor), cubic coefficient a = -0.5, two separable passes
(horizontal, then vertical), each rounded and clamped to uint8. On CPU,
torch's uint8 antialiased kernel implements exactly that; on other devices
(torch has no uint8 kernel there) the two passes run in float32 with the
same rounding between them. Both agree with Pillow to the level except at
rare high-contrast pixels where Pillow's fixed-point coefficients round
differently (``tests/test_crop.py`` measures it on real images).

One view's parameters are a dict (see :data:`CROP_KEYS`):
``dict(box=(top, left, height, width), flip=bool, size=int)``.
"""
from typing import List, Sequence, Union

import torch
import torch.nn.functional as F

#: Keys of one view's crop parameters and their meaning.
CROP_KEYS = (
    'box',  # (top, left, height, width) of the crop in the source, pixels
    'flip',  # bool: flip the resized crop horizontally
    'size',  # int: output side length (square views)
)


def check_crop_params(params: dict,
                      height: int,
                      width: int,
                      where: str = 'crop_params') -> None:
    """Raise a ValueError naming ``where`` if ``params`` is malformed or its
    box leaves an image of ``height`` x ``width``."""
    if not isinstance(params, dict) or set(params) != set(CROP_KEYS):
        raise ValueError(f'{where} must be a dict with keys {CROP_KEYS}, got '
                         f'{params!r}')
    box = params['box']
    if len(box) != 4:
        raise ValueError(f'{where}.box must be (top, left, height, width), '
                         f'got {box!r}')
    top, left, h, w = (int(v) for v in box)
    if not (0 <= top and 0 <= left and h > 0 and w > 0 and top + h <= height
            and left + w <= width):
        raise ValueError(f'{where}.box {tuple(box)} does not fit an image of '
                         f'{height} x {width}')
    if int(params['size']) <= 0:
        raise ValueError(f'{where}.size must be positive, got '
                         f'{params["size"]!r}')


def resize_bicubic(img: torch.Tensor, size: Sequence[int]) -> torch.Tensor:
    """Pillow's antialiased bicubic resize of a uint8 batch.

    On CPU torch's uint8 kernel; elsewhere :func:`resize_bicubic_float`.

    Args:
        img (torch.Tensor): (N, C, H, W) uint8.
        size (tuple[int, int]): output (height, width).

    Returns:
        torch.Tensor: (N, C, *size) uint8.
    """
    if img.dtype != torch.uint8:
        raise TypeError(f'resize_bicubic expects uint8 images, got '
                        f'{img.dtype}')
    size = (int(size[0]), int(size[1]))
    if img.device.type == 'cpu':
        return F.interpolate(
            img,
            size=size,
            mode='bicubic',
            antialias=True,
            align_corners=False)
    return resize_bicubic_float(img, size)


def resize_bicubic_float(img: torch.Tensor,
                         size: Sequence[int]) -> torch.Tensor:
    """:func:`resize_bicubic` in float32 on any device: Pillow's two passes
    (horizontal, then vertical), each rounded and clamped to [0, 255]."""
    size = (int(size[0]), int(size[1]))
    x = img.float()  # (N, C, H, W)
    x = F.interpolate(  # horizontal pass: (N, C, H, size[1])
        x,
        size=(x.shape[-2], size[1]),
        mode='bicubic',
        antialias=True,
        align_corners=False).round_().clamp_(0, 255)
    x = F.interpolate(  # vertical pass: (N, C, *size)
        x,
        size=size,
        mode='bicubic',
        antialias=True,
        align_corners=False).round_().clamp_(0, 255)
    return x.to(torch.uint8)


def resized_crops(images: Union[torch.Tensor, Sequence[torch.Tensor]],
                  params: Sequence[dict]) -> torch.Tensor:
    """Cut, resize and flip one view from each image.

    Equals MMPretrain's ``RandomResizedCrop`` (Pillow, bicubic) followed by
    MMCV's horizontal ``RandomFlip`` for the same drawn parameters, to the
    level (see the module docstring).

    Args:
        images (Tensor | list[Tensor]): N images, each (C, H, W) uint8 (a
            list when their sizes differ), on the target device.
        params (list[dict]): N crop parameter dicts (:data:`CROP_KEYS`), all
            with the same ``size``.

    Returns:
        torch.Tensor: (N, C, size, size) uint8.
    """
    if len(images) != len(params):
        raise ValueError(f'resized_crops: {len(images)} images but '
                         f'{len(params)} crop parameter dicts')
    if len({int(p['size']) for p in params}) > 1:
        raise ValueError('resized_crops: the views of a batch must share one '
                         f'size, got {sorted({p["size"] for p in params})}')
    out: List[torch.Tensor] = []
    for i, (img, p) in enumerate(zip(images, params)):
        check_crop_params(p, img.shape[-2], img.shape[-1], f'crop_params[{i}]')
        top, left, h, w = (int(v) for v in p['box'])
        # (1, C, h, w) -> (1, C, size, size)
        view = resize_bicubic(img[None, :, top:top + h, left:left + w],
                              (p['size'], p['size']))
        out.append(view.flip(-1) if p['flip'] else view)
    return torch.cat(out)


__all__ = [
    'CROP_KEYS', 'check_crop_params', 'resize_bicubic', 'resize_bicubic_float',
    'resized_crops'
]
