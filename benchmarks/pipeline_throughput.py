"""Data-pipeline cost per image on one CPU core, and the device-side cost.

Part 1 runs the pre-training configs' ``train_pipeline`` (loading, the two
FOLK views or MFM's single crop, the filter choice, packing) on real images
in one process with one thread, timing every transform:

- ``folk``: FOLK as configured: the workers decode and draw the crop, flip
  and photometric parameters; the views are cut and augmented on the
  device (``FOLKViews(crop='device', photometric='device')``);
- ``folk_cpu_crop``: crop and flip in the workers, photometric on the
  device (``crop='cpu'``);
- ``folk_cpu_aug``: everything in the workers (``crop='cpu',
  photometric='cpu'``, MMPretrain's way);
- ``mfm``: MFM's single crop.

on two sources: the bundled Imagenette at 128 px, and ImageNet-like 500x375
JPEGs made from the CamVid frames in a temporary folder
(``benchmarks/jpeg_decode.py`` says how), where decoding costs what it costs
on ImageNet. Divide a GPU's pre-training images/s by the images/s per core
printed here to get the data-loader workers it needs.

Part 2 times what moved to the device for a batch of 2 x ``--batch`` views
at 224 px (from real images): the crops (``folk.views.crop``,
compared with the CPU path's Pillow crops), the photometric augmentation
with folk's batched operations (``folk.views.photometric``) and with Kornia's
functional operations driven by the same parameters, and the whole
``FrequencyFilterPreprocessor`` forward (crops + augmentation + Com / RCom
filters + normalisation). On CPU (all threads, each timed once, seconds per
batch; the whole preprocessor without photometric only) always, on CUDA
(mean of 10 calls after a warm-up) when available. The crops and both
photometric versions are compared with the CPU path's images (MMCV /
Pillow): maximum and mean absolute difference in uint8 levels.

Examples::

    python benchmarks/pipeline_throughput.py \\
        --out benchmarks/results/pipeline_throughput_cpu.json
"""
import argparse
import copy
import glob
import math
import os.path as osp
import platform
import random
import tempfile
import time
from typing import Dict, List, Optional, Sequence

import cv2
import numpy as np
import torch
from mmengine.config import Config
from mmengine.dataset import default_collate
from mmengine.registry import init_default_scope
from mmpretrain.registry import MODELS, TRANSFORMS

import folk  # noqa: F401
from folk.views.collate import folk_views_collate
from folk.views.crop import resized_crops
from folk.views.photometric import apply_photometric
from folk.views.recipe import JITTER_OPS, apply_photometric_cpu

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))

from benchmark_report import write_report  # noqa: E402
from jpeg_decode import make_fullsize_jpegs  # noqa: E402

FOLK_CFG = 'configs/_base_/datasets/imagenet_bs128_folk.py'
# pipeline name -> (dataset config, FOLKViews options changed)
PIPELINES = {
    'folk': (FOLK_CFG, {}),
    'folk_cpu_crop': (FOLK_CFG, dict(crop='cpu')),
    'folk_cpu_aug': (FOLK_CFG, dict(crop='cpu', photometric='cpu')),
    'mfm': ('configs/_base_/datasets/imagenet_bs128_mfm.py', {}),
}


def find_images(root: str, limit: int) -> list:
    """The first ``limit`` JPEG / PNG files under ``root`` (sorted)."""
    files = sorted(
        f for ext in ('jpg', 'jpeg', 'JPEG', 'png')
        for f in glob.glob(osp.join(root, '**', f'*.{ext}'), recursive=True))
    if not files:
        raise FileNotFoundError(f'--data {root}: no .jpg / .png images')
    return files[:limit]


def build_pipeline(method: str, crop_size: Optional[int] = None) -> list:
    """The transforms of ``method``'s pre-training ``train_pipeline``."""
    path, views_options = PIPELINES[method]
    pipeline = Config.fromfile(osp.join(REPO, path)).train_pipeline
    for step in pipeline:
        if step['type'] == 'FOLKViews':
            step.update(views_options)
            if crop_size is not None:
                step['crop_size'] = crop_size
    return [TRANSFORMS.build(t) for t in pipeline]


def run_once(transforms: list, files: list, spent: list) -> dict:
    """Run every image through ``transforms``; add the CPU seconds of this
    process spent in each transform to ``spent``."""
    for path in files:
        results = dict(img_path=path)
        for i, t in enumerate(transforms):
            tic = time.process_time()
            results = t(results)
            spent[i] += time.process_time() - tic
    return results


def time_pipelines(methods: list,
                   files: list,
                   rounds: int = 3,
                   warmup: int = 5) -> list:
    """Per-transform milliseconds per image and images/s on one core.

    Costs are CPU time of this (single-threaded) process, which a busy
    shared machine inflates much less than wall time (also reported). The
    pipelines take turns, ``rounds`` times over all ``files``, so a slow
    phase hits every pipeline alike.
    """
    pipelines = {m: build_pipeline(m) for m in methods}
    spent = {m: [0.0] * len(t) for m, t in pipelines.items()}
    wall = dict.fromkeys(methods, 0.0)
    cpu = dict.fromkeys(methods, 0.0)
    last = {}
    for method, transforms in pipelines.items():
        run_once(transforms, files[:warmup], [0.0] * len(transforms))
    for _ in range(rounds):
        for method, transforms in pipelines.items():
            start, start_cpu = time.perf_counter(), time.process_time()
            last[method] = run_once(transforms, files, spent[method])
            wall[method] += time.perf_counter() - start
            cpu[method] += time.process_time() - start_cpu
    rows = []
    for method, transforms in pipelines.items():
        n = len(files) * rounds
        views = last[method]['inputs']
        views = views if isinstance(views, list) else [views]
        crops = last[method]['data_samples'].get('crop_params')
        if crops:  # the decoded image is packed; the views come later
            views = [(3, p['size'], p['size']) for p in crops]
        rows.append(
            dict(
                method=method,
                images=n,
                views=len(views),
                view_shape=list(views[0] if crops else views[0].shape),
                views_cut_on_device=bool(crops),
                ms_per_image=1000 * cpu[method] / n,
                wall_ms_per_image=1000 * wall[method] / n,
                images_per_s_per_core=n / cpu[method],
                steps=[
                    dict(transform=type(t).__name__, ms=1000 * s / n)
                    for t, s in zip(transforms, spent[method])
                ]))
    return rows


def cost_ratios(rows: list, reference: str = 'mfm') -> Dict[str, float]:
    """ms per image of every pipeline over that of ``reference``."""
    ref = {r['method']: r['ms_per_image'] for r in rows}[reference]
    return {r['method']: r['ms_per_image'] / ref for r in rows}


def table(rows: list, header: str) -> str:
    ratios = cost_ratios(rows) if any(r['method'] == 'mfm'
                                      for r in rows) else {}
    lines = [
        header, '', '| pipeline | views | images/s per core | CPU ms / image '
        '| x MFM | wall ms / image | CPU ms per transform |',
        '|---|---|---|---|---|---|---|'
    ]
    for r in rows:
        steps = ', '.join(f"{s['transform']} {s['ms']:.2f}"
                          for s in r['steps'])
        ratio = ratios.get(r['method'])
        where = ' (cut on the device)' if r.get('views_cut_on_device') else ''
        lines.append(f"| {r['method']} | {r['views']} x "
                     f"{'x'.join(map(str, r['view_shape']))}{where} | "
                     f"{r['images_per_s_per_core']:.1f} | "
                     f"{r['ms_per_image']:.2f} | "
                     f"{'-' if ratio is None else f'{ratio:.2f}'} | "
                     f"{r['wall_ms_per_image']:.2f} | {steps} |")
    return '\n'.join(lines)


# ---------------------------------------------------------------------------
# Part 2: the device side
# ---------------------------------------------------------------------------
def kornia_photometric(img: torch.Tensor, params: Sequence[dict]):
    """The recipe with Kornia's functional operations (torchvision-style
    float arithmetic), grouped per operation as
    :func:`folk.views.photometric.apply_photometric`; the candidate library
    version. (N, 3, H, W) uint8 BGR in and out."""
    import kornia

    x = img.flip(1).float() / 255.  # RGB in [0, 1]

    def apply(which, func, *args):
        if len(which):
            idx = torch.as_tensor(which, device=x.device)
            x[idx] = func(x[idx], *args)

    def tensor(values):
        return torch.as_tensor(np.asarray(values, np.float32), device=x.device)

    E = kornia.enhance
    funcs = dict(
        brightness=E.adjust_brightness_accumulative,
        contrast=E.adjust_contrast_with_mean_subtraction,
        saturation=E.adjust_saturation_with_gray_subtraction,
        hue=lambda t, h: E.adjust_hue(t, h * 2 * math.pi))
    jitter = np.array([p['jitter'] for p in params])
    order = np.array([p['order'] for p in params])
    for position in range(4):
        for op, name in enumerate(JITTER_OPS):
            which = np.flatnonzero(jitter & (order[:, position] == op))
            apply(which, funcs[name], tensor([params[i][name] for i in which]))
    gray = np.flatnonzero([p['grayscale'] for p in params])
    apply(
        gray, lambda t: kornia.color.rgb_to_grayscale(
            t,
            rgb_weights=torch.tensor([0.2989, 0.587, 0.114], device=t.device)).
        expand_as(t))
    sigma = np.array([p['blur_sigma'] for p in params])
    blur = np.flatnonzero(sigma > 0)
    if len(blur):
        size = 2 * math.ceil(3 * sigma[blur].max()) + 1
        s = tensor(sigma[blur])[:, None].expand(-1, 2)
        apply(
            blur, lambda t: kornia.filters.gaussian_blur2d(
                t, (size, size), s, border_type='replicate'))
    sol = np.flatnonzero([p['solarize'] for p in params])
    apply(sol, lambda t: E.solarize(t, 0.5))
    return (x * 255.).round_().clamp_(0, 255).to(torch.uint8).flip(1)


def device_batch(files: list,
                 batch: int,
                 crop: int = 224,
                 method: str = 'folk') -> list:
    """``batch`` packed samples of ``method``'s pipeline, seeded."""
    transforms = build_pipeline(method, crop)
    random.seed(0)
    np.random.seed(0)
    samples = []
    for i in range(batch):
        results = dict(img_path=files[i % len(files)])
        for t in transforms:
            results = t(results)
        samples.append(results)
    return samples


def _timed(func, device: str, repeats: int):
    """``(output of the first call, ms)``: with ``repeats`` > 0 the mean ms
    of ``repeats`` more calls (the first one warms up), else the ms of the
    first call itself (CPU: seconds per batch, warm-up is negligible).
    Synchronised on CUDA."""

    def run(n):
        if device == 'cuda':
            torch.cuda.synchronize()
        tic = time.perf_counter()
        for _ in range(n):
            out = func()
        if device == 'cuda':
            torch.cuda.synchronize()
        return out, 1000 * (time.perf_counter() - tic) / n

    out, ms = run(1)
    if repeats > 0:
        ms = run(repeats)[1]
    return out, ms


def time_device_side(samples: list, uncut: list, devices: List[str],
                     repeats: Dict[str, int]) -> List[dict]:
    """ms per batch of the device-side work, and agreement with MMCV.

    ``samples``: packed views cut on CPU (``folk_cpu_crop``); ``uncut``:
    the same images with the same draws, cut on the device (``folk``).
    """
    views = [torch.stack([s['inputs'][v] for s in samples]) for v in range(2)]
    params = [
        p for v in range(2)
        for p in (s['data_samples'].photometric_params[v] for s in samples)
    ]
    x = torch.cat(views)  # (2B, 3, H, W) uint8 BGR
    # the CPU path's images (MMCV / Pillow), image by image
    cpu = np.stack([
        apply_photometric_cpu(img.permute(1, 2, 0).numpy().copy(), p)
        for img, p in zip(x, params)
    ])
    pre = MODELS.build(
        dict(
            type='FrequencyFilterPreprocessor',
            mean=[123.675, 116.28, 103.53],
            std=[58.395, 57.12, 57.375],
            to_rgb=True))
    batch = default_collate(copy.deepcopy(samples))
    plain = copy.deepcopy(batch)
    for s in plain['data_samples']:
        del s.photometric_params
    whole_batch = folk_views_collate(copy.deepcopy(uncut))
    crops = [
        p for v in range(2)
        for p in (s['data_samples'].crop_params[v] for s in uncut)
    ]
    rows = []
    for device in devices:
        xd = x.to(device)
        pre_d = pre.to(device)
        images = [s['inputs'].to(device) for s in uncut] * 2
        out, ms = _timed(lambda: resized_crops(images, crops), device,
                         repeats[device])
        diff = np.abs(out.cpu().numpy().astype(np.int16) -
                      x.numpy().astype(np.int16))
        rows.append(
            dict(
                what='crops (folk.views.crop) vs Pillow',
                device=device,
                views=int(x.shape[0]),
                ms_per_batch=ms,
                max_abs_diff_vs_mmcv=int(diff.max()),
                mean_abs_diff_vs_mmcv=float(diff.mean()),
                pixels_over_1_level=float((diff > 1).mean())))
        candidates = dict(
            folk=lambda: apply_photometric(xd, params, check=False),
            kornia=lambda: kornia_photometric(xd, params))
        for name, func in candidates.items():
            out, ms = _timed(func, device, repeats[device])
            out = out.cpu().permute(0, 2, 3, 1).numpy()
            diff = np.abs(out.astype(np.int16) - cpu)
            rows.append(
                dict(
                    what=f'photometric ({name})',
                    device=device,
                    views=int(x.shape[0]),
                    ms_per_batch=ms,
                    max_abs_diff_vs_mmcv=int(diff.max()),
                    mean_abs_diff_vs_mmcv=float(diff.mean()),
                    pixels_over_1_level=float((diff > 1).mean())))
        whole = [('preprocessor, filters only', plain)]
        if repeats[device] > 0:  # on CPU: about the sum of the rows
            whole += [('preprocessor, photometric + filters', batch),
                      ('preprocessor, crops + photometric + filters',
                       whole_batch)]
        for name, data in whole:
            ms = _timed(lambda: pre_d(data, training=True), device,
                        repeats[device])[1]
            rows.append(
                dict(
                    what=name,
                    device=device,
                    views=int(x.shape[0]),
                    ms_per_batch=ms))
    return rows


def device_table(rows: list, header: str) -> str:
    lines = [
        header, '', '| work | device | views | ms / batch | max abs diff '
        'vs MMCV | mean abs diff | pixels > 1 level |',
        '|---|---|---|---|---|---|---|'
    ]
    for r in rows:
        extra = ('- | - | -' if 'max_abs_diff_vs_mmcv' not in r else
                 f"{r['max_abs_diff_vs_mmcv']} | "
                 f"{r['mean_abs_diff_vs_mmcv']:.4f} | "
                 f"{100 * r['pixels_over_1_level']:.3f} %")
        lines.append(f"| {r['what']} | {r['device']} | {r['views']} | "
                     f"{r['ms_per_batch']:.1f} | {extra} |")
    return '\n'.join(lines)


def main():
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument(
        '--data',
        default=osp.join(REPO, '..', 'shared', 'data', 'imagenette128'),
        help='folder of images (searched recursively)')
    p.add_argument('--images', type=int, default=200)
    p.add_argument('--rounds', type=int, default=3)
    p.add_argument(
        '--fullsize',
        default='500x375',
        help='WIDTHxHEIGHT of the JPEGs made from CamVid ('
        'empty: skip that source)')
    p.add_argument(
        '--methods',
        default='folk,folk_cpu_crop,folk_cpu_aug,mfm',
        help=f'comma-separated, from {sorted(PIPELINES)}')
    p.add_argument(
        '--batch',
        type=int,
        default=128,
        help='images per device batch (2 views each); 0: skip')
    p.add_argument('--out', default=None, help='JSON output path')
    args = p.parse_args()
    init_default_scope('mmpretrain')
    cv2.setNumThreads(1)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    methods = args.methods.split(',')
    processor = platform.processor() or platform.machine()
    sources = {
        osp.relpath(args.data, REPO): find_images(args.data, args.images)
    }
    config = dict(vars(args), data=osp.relpath(args.data, REPO))
    texts, data = [], dict(config=config, sources={})
    with tempfile.TemporaryDirectory(prefix='folk_pipeline_') as tmp:
        if args.fullsize:
            w, h = (int(v) for v in args.fullsize.split('x'))
            name = f'CamVid frames as {w}x{h} JPEGs (q90, 4:2:0)'
            sources[name] = make_fullsize_jpegs(tmp, args.images, (w, h))
        for name, files in sources.items():
            rows = time_pipelines(methods, files, args.rounds)
            data['sources'][name] = dict(
                rows=rows,
                ms_ratio_to_mfm=(cost_ratios(rows)
                                 if 'mfm' in methods else None))
            texts.append(
                table(
                    rows, f'{len(files)} images from {name}, {args.rounds} '
                    f'rounds taking turns, one thread, {processor}; CPU time '
                    f'of the process, wall time beside it'))
    if args.batch:
        torch.set_num_threads(threads)
        devices = ['cpu'] + (['cuda'] if torch.cuda.is_available() else [])
        files = next(iter(sources.values()))
        rows = time_device_side(
            device_batch(files, args.batch, method='folk_cpu_crop'),
            device_batch(files, args.batch), devices, dict(cpu=0, cuda=10))
        data['device_side'] = dict(threads=threads, rows=rows)
        texts.append(
            device_table(
                rows, f'Device side: 2 x {args.batch} views at 224 px from '
                f'{next(iter(sources))}, CPU with {threads} threads' +
                (f', CUDA {torch.cuda.get_device_name()}'
                 if 'cuda' in devices else '')))
    write_report(args.out, data, '\n\n'.join(texts))


if __name__ == '__main__':
    main()
