"""JPEG decoding + random resized crop per image on one CPU core.

ImageNet's training JPEGs are about 500x375 (4:2:0 chroma, quality about
90); the bundled data sets are smaller (Imagenette 128 px, CamVid 480x360).
This script makes ImageNet-like JPEGs from the CamVid frames in a temporary
folder (never in the repository): each frame is upscaled with Pillow's
bicubic filter to ``--size`` (default 500x375, and 1000x750 for the case
where DCT-domain downscaling can help) and saved with Pillow at quality 90,
4:2:0. It then times, per decoder, decoding to the pipeline's BGR uint8
array and decoding + the configs' ``RandomResizedCrop`` (224 px, area
0.25-1, bicubic, Pillow), and prints a table (and JSON):

- ``cv2``: ``cv2.imdecode`` (``LoadImageFromFileSafe``, the configs'
  loader);
- ``pillow``: ``PIL.Image.open(...).convert('RGB')``;
- ``torchvision``: ``torchvision.io.decode_jpeg`` on CPU (and on CUDA, a
  batch of all images, when available);
- ``simplejpeg``: libjpeg-turbo through ``simplejpeg.decode_jpeg`` (BGR
  output);
- ``simplejpeg_dct``: the same with DCT-domain downscaling (1/2, 1/4, 1/8)
  whenever the crop, drawn from the full-size geometry, still covers
  ``crop_size`` pixels at the reduced size; the crop box is the same, the
  pixels differ by the decoder's downscaling (reported as the mean absolute
  difference to the full-size decode + crop).

Examples::

    python benchmarks/jpeg_decode.py \\
        --out benchmarks/results/jpeg_decode_cpu.json
"""
import argparse
import glob
import io
import math
import os
import os.path as osp
import platform
import tempfile
import time
from typing import Callable, Dict, List, Optional, Tuple

import cv2
import numpy as np
import torch
from benchmark_report import write_report
from PIL import Image

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))

CAMVID = osp.join(REPO, '..', 'shared', 'data', 'camvid', 'images', 'train')
CROP = 224
CROP_SCALE = (0.25, 1.0)


def make_fullsize_jpegs(out_dir: str,
                        count: int,
                        size: Tuple[int, int] = (500, 375),
                        src: str = CAMVID,
                        quality: int = 90) -> List[str]:
    """Write ``count`` ImageNet-like JPEGs made from the CamVid frames.

    Each frame (480x360) is resized with Pillow's bicubic filter to
    ``size`` (width, height) and saved at ``quality`` with 4:2:0 chroma.

    Returns:
        list[str]: The written files.
    """
    frames = sorted(glob.glob(osp.join(src, '*.jpg')))
    if not frames:
        raise FileNotFoundError(f'no CamVid frames (*.jpg) in {src}')
    os.makedirs(out_dir, exist_ok=True)
    paths = []
    for i in range(count):
        frame = frames[i % len(frames)]
        path = osp.join(out_dir, f'{i:04d}_{size[0]}x{size[1]}.jpg')
        with Image.open(frame) as img:
            img.convert('RGB').resize(size, Image.BICUBIC).save(
                path, quality=quality, subsampling=2)  # 2 = 4:2:0
        paths.append(path)
    return paths


# ---------------------------------------------------------------------------
# Decoders: bytes -> (H, W, 3) uint8 BGR, as the data pipeline needs
# ---------------------------------------------------------------------------
def decode_cv2(data: bytes) -> np.ndarray:
    return cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)


def decode_pillow(data: bytes) -> np.ndarray:
    with Image.open(io.BytesIO(data)) as img:
        return np.ascontiguousarray(np.asarray(img.convert('RGB'))[..., ::-1])


def decode_torchvision(data: bytes) -> np.ndarray:
    from torchvision.io import decode_jpeg
    rgb = decode_jpeg(torch.frombuffer(bytearray(data), dtype=torch.uint8))
    return np.ascontiguousarray(rgb.flip(0).permute(1, 2, 0).numpy())


def decode_simplejpeg(data: bytes) -> np.ndarray:
    import simplejpeg
    return simplejpeg.decode_jpeg(data, colorspace='BGR')


DECODERS: Dict[str, Callable[[bytes], np.ndarray]] = dict(
    cv2=decode_cv2,
    pillow=decode_pillow,
    torchvision=decode_torchvision,
    simplejpeg=decode_simplejpeg)


# ---------------------------------------------------------------------------
# The configs' crop
# ---------------------------------------------------------------------------
def build_crop():
    """MMPretrain's RandomResizedCrop as in FOLKViews."""
    from mmpretrain.registry import TRANSFORMS
    return TRANSFORMS.build(
        dict(
            type='RandomResizedCrop',
            scale=CROP,
            crop_ratio_range=CROP_SCALE,
            backend='pillow',
            interpolation='bicubic',
            _scope_='mmpretrain'))


def crop_box(crop, height: int, width: int) -> Tuple[int, int, int, int]:
    """Draw a crop box (top, left, h, w) for an image of this size."""
    return crop.rand_crop_params(np.empty((height, width, 1), np.uint8))


def resize_box(img: np.ndarray, box) -> np.ndarray:
    """Cut ``box`` out of ``img`` and resize it as RandomResizedCrop."""
    import mmcv
    top, left, h, w = box
    patch = img[top:top + h, left:left + w]
    return mmcv.imresize(
        patch, (CROP, CROP), interpolation='bicubic', backend='pillow')


def decode_crop_dct(data: bytes, box) -> np.ndarray:
    """Decode at the smallest DCT scale at which ``box`` (full-size
    coordinates) still covers CROP x CROP pixels, then crop and resize."""
    import simplejpeg
    height, width = simplejpeg.decode_jpeg_header(data)[:2]
    top, left, h, w = box
    factor = 1
    for f in (2, 4, 8):
        if min(h, w) / f >= CROP:
            factor = f
    if factor == 1:
        return resize_box(decode_simplejpeg(data), box)
    img = simplejpeg.decode_jpeg(
        data,
        colorspace='BGR',
        min_height=math.ceil(height / factor),
        min_width=math.ceil(width / factor))
    sy, sx = img.shape[0] / height, img.shape[1] / width
    scaled = (round(top * sy), round(left * sx), max(1, round(h * sy)),
              max(1, round(w * sx)))
    return resize_box(img, scaled)


def time_decoders(paths: List[str],
                  names: List[str],
                  rounds: int = 2) -> List[dict]:
    """CPU ms per image of decoding and of decoding + crop, per decoder
    (CPU time of this single-threaded process: a busy shared machine
    inflates it much less than wall time).

    The decoders take turns ``rounds`` times over ``paths`` (a slow phase
    of a shared machine hits all alike); the crop boxes are drawn once per
    image and shared, so every decoder crops the same regions.
    """
    data = [open(p, 'rb').read() for p in paths]
    crop = build_crop()
    rng_state = np.random.get_state()
    np.random.seed(0)
    ref_images = [decode_cv2(d) for d in data]
    boxes = [crop_box(crop, *img.shape[:2]) for img in ref_images]
    np.random.set_state(rng_state)
    ref_crops = [resize_box(img, b) for img, b in zip(ref_images, boxes)]
    spent = {n: [0.0, 0.0] for n in names}
    for name in names:  # warm-up, and check the output
        if name != 'simplejpeg_dct':
            out = DECODERS[name](data[0])
            assert out.shape == ref_images[0].shape and out.dtype == np.uint8
    for _ in range(rounds):
        for name in names:
            if name == 'simplejpeg_dct':
                tic = time.process_time()
                for d, b in zip(data, boxes):
                    decode_crop_dct(d, b)
                spent[name][1] += time.process_time() - tic
                continue
            decode = DECODERS[name]
            tic = time.process_time()
            for d in data:
                decode(d)
            spent[name][0] += time.process_time() - tic
            tic = time.process_time()
            for d, b in zip(data, boxes):
                resize_box(decode(d), b)
            spent[name][1] += time.process_time() - tic
    rows = []
    n = len(paths) * rounds
    for name in names:
        if name == 'simplejpeg_dct':
            crops = [decode_crop_dct(d, b) for d, b in zip(data, boxes)]
        else:
            decode = DECODERS[name]
            crops = [resize_box(decode(d), b) for d, b in zip(data, boxes)]
        diff = np.mean([
            np.abs(c.astype(np.int16) - r).mean()
            for c, r in zip(crops, ref_crops)
        ])
        decode_ms = 1000 * spent[name][0] / n if spent[name][0] else None
        rows.append(
            dict(
                decoder=name,
                device='cpu',
                images=n,
                decode_ms=decode_ms,
                decode_crop_ms=1000 * spent[name][1] / n,
                crop_mean_abs_diff_vs_cv2=float(diff)))
    return rows


def time_cuda_decode(paths: List[str], rounds: int = 3) -> Optional[dict]:
    """``torchvision.io.decode_jpeg(device='cuda')`` on a batch of all
    images (wall ms per image, synchronised), or None without CUDA."""
    if not torch.cuda.is_available():
        return None
    from torchvision.io import decode_jpeg
    data = [
        torch.frombuffer(bytearray(open(p, 'rb').read()), dtype=torch.uint8)
        for p in paths
    ]
    decode_jpeg(data[:2], device='cuda')  # warm-up
    torch.cuda.synchronize()
    tic = time.perf_counter()
    for _ in range(rounds):
        decode_jpeg(data, device='cuda')
    torch.cuda.synchronize()
    ms = 1000 * (time.perf_counter() - tic) / (rounds * len(paths))
    return dict(
        decoder='torchvision',
        device='cuda',
        images=rounds * len(paths),
        decode_ms=ms,
        decode_crop_ms=None,
        crop_mean_abs_diff_vs_cv2=None)


def table(results: Dict[str, List[dict]], header: str) -> str:
    lines = [
        header, '', '| size | decoder | device | decode ms / image | '
        'decode + crop ms / image | crop mean abs diff vs cv2 (levels) |',
        '|---|---|---|---|---|---|'
    ]

    def fmt(v):
        return '-' if v is None else f'{v:.2f}'

    for size, rows in results.items():
        for r in rows:
            lines.append(f"| {size} | {r['decoder']} | {r['device']} | "
                         f"{fmt(r['decode_ms'])} | "
                         f"{fmt(r['decode_crop_ms'])} | "
                         f"{fmt(r['crop_mean_abs_diff_vs_cv2'])} |")
    return '\n'.join(lines)


def main():
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--images', type=int, default=100)
    p.add_argument('--rounds', type=int, default=2)
    p.add_argument(
        '--sizes',
        default='500x375,1000x750',
        help='comma-separated WIDTHxHEIGHT of the made JPEGs')
    p.add_argument(
        '--decoders',
        default='cv2,pillow,torchvision,simplejpeg,simplejpeg_dct')
    p.add_argument('--out', default=None, help='JSON output path')
    args = p.parse_args()
    torch.set_num_threads(1)
    cv2.setNumThreads(1)
    import folk  # noqa: F401  (registers and patches, as in training)
    names = args.decoders.split(',')
    results = {}
    with tempfile.TemporaryDirectory(prefix='folk_jpeg_') as tmp:
        for size in args.sizes.split(','):
            w, h = (int(v) for v in size.split('x'))
            paths = make_fullsize_jpegs(
                osp.join(tmp, size), args.images, (w, h))
            rows = time_decoders(paths, names, args.rounds)
            cuda = time_cuda_decode(paths)
            if cuda is not None:
                rows.append(cuda)
            results[size] = rows
    header = (f'{args.images} JPEGs per size made from CamVid frames '
              f'(Pillow bicubic upscale, quality 90, 4:2:0), '
              f'{args.rounds} rounds taking turns, one thread, CPU time '
              f'(CUDA: wall time), '
              f'{platform.processor() or platform.machine()}; crop: '
              f'RandomResizedCrop {CROP} px, area {CROP_SCALE}, bicubic')
    write_report(args.out, dict(config=vars(args), results=results),
                 table(results, header))


if __name__ == '__main__':
    main()
