"""Throughput of FOLK's frequency filtering, in images per second.

Three paths, measured in one run so that their ratios are comparable:

(a) ``transform``: :class:`folk.datasets.RandomFrequencyFilter` with
    ``apply=True``, one image per call on CPU (what the data pipeline does
    when it filters, uint8 (H, W, 3) in, float keep mask + filtered view out);
(b) ``batched``: :func:`folk.frequency.filter_images` on a (B, 3, S, S)
    float [0, 1] batch on CPU (what ``FrequencyFilterPreprocessor`` runs);
(c) ``batched`` on CUDA, if available: the batch on the GPU, the filter
    choices on the host as in training; one synchronisation after the
    warm-up and one after the timed batches, none in between.

Each image draws its filter as in training (default: FOLK's Com / RCom with
probability 0.5, ratios 0.005 / 0.01 / 0.05; ``--filters mfm`` for MFM's
low/high-pass with the radius scaled to the size). Images are real
Imagenette pictures resized to each size when the data is found, random
noise otherwise.

Usage::

    python benchmarks/frequency_throughput.py --sizes 64 224 --batch 64 \
        --iters 10 --out benchmarks/results/frequency_throughput.json

prints a markdown table and writes the JSON to ``--out`` and the table to
the same path with ``.md``.
"""
import argparse
import datetime
import os
import os.path as osp
import platform
import sys
import time
from typing import Dict, List, Optional, Tuple

import numpy as np
import torch

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))

from benchmark_report import write_report  # noqa: E402

from folk.datasets.transforms import RandomFrequencyFilter  # noqa: E402
from folk.frequency import filter_images, kind_to_index, mfm_radius  # noqa

RATIOS = (0.005, 0.01, 0.05)


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument(
        '--sizes',
        type=int,
        nargs='+',
        default=[64, 224],
        help='square image sizes (default: 64 224)')
    parser.add_argument(
        '--batch', type=int, default=64, help='images per batch (default: 64)')
    parser.add_argument(
        '--iters',
        type=int,
        default=10,
        help='timed batches per path and size (default: 10)')
    parser.add_argument(
        '--warmup',
        type=int,
        default=2,
        help='untimed batches first (default: 2)')
    parser.add_argument(
        '--device',
        nargs='+',
        default=['cpu', 'cuda'],
        choices=['cpu', 'cuda'],
        help='devices of the batched path; cuda is skipped when not '
        'available (default: cpu cuda)')
    parser.add_argument(
        '--no-transform',
        action='store_true',
        help='skip the per-image CPU transform path (a)')
    parser.add_argument(
        '--filters',
        choices=['folk', 'mfm'],
        default='folk',
        help='folk: Com/RCom 0.5 each; mfm: low/high-pass')
    parser.add_argument(
        '--threads',
        type=int,
        default=None,
        help='torch CPU threads (default: torch default)')
    parser.add_argument(
        '--data-root',
        default=osp.join(osp.dirname(REPO), 'shared', 'data', 'imagenette128'),
        help='Imagenette folder with train.txt (random images if missing)')
    parser.add_argument(
        '--out',
        default=osp.join(REPO, 'benchmarks', 'results',
                         'frequency_throughput.json'),
        help='JSON output; the markdown table goes next to it (.md)')
    parser.add_argument('--seed', type=int, default=0)
    return parser.parse_args(argv)


def load_images(data_root: str, count: int, size: int,
                rng: np.random.RandomState) -> Tuple[np.ndarray, str]:
    """(count, size, size, 3) uint8 BGR images and where they came from."""
    ann = osp.join(data_root, 'train.txt')
    if osp.isfile(ann):
        import cv2
        with open(ann) as f:
            rel = [line.split()[0] for line in f if line.strip()]
        step = max(1, len(rel) // count)
        imgs = []
        for r in rel[::step][:count]:
            img = cv2.imread(osp.join(data_root, r), cv2.IMREAD_COLOR)
            interp = cv2.INTER_AREA if img.shape[0] > size else \
                cv2.INTER_CUBIC
            imgs.append(cv2.resize(img, (size, size), interpolation=interp))
        num_distinct = len(imgs)
        while len(imgs) < count:  # fewer files than images asked for
            imgs.append(imgs[len(imgs) % num_distinct])
        return np.stack(imgs), (f'{osp.basename(osp.normpath(data_root))} '
                                'train images, resized')
    return rng.randint(0, 256, (count, size, size, 3), np.uint8), 'random'


def make_filters(kind: str, size: int) -> List[dict]:
    if kind == 'folk':
        return [
            dict(kind='com', ratios=RATIOS, prob=0.5),
            dict(kind='rcom', ratios=RATIOS, prob=0.5)
        ]
    r = mfm_radius(size)
    return [
        dict(kind='lowpass', radius=r, prob=0.5),
        dict(kind='highpass', radius=r, prob=0.5)
    ]


def draw_choices(transform: RandomFrequencyFilter, count: int):
    """Per-image filter choice, drawn as the transform draws it."""
    kinds, params = [], []
    for _ in range(count):
        (kind, param), = transform._choose(1)
        kinds.append(kind)
        params.append(param)
    return kind_to_index(kinds), torch.tensor(params, dtype=torch.float32)


def bench_transform(imgs: np.ndarray, filters: List[dict], iters: int,
                    warmup: int) -> Dict:
    """(a) RandomFrequencyFilter(apply=True), one image per call."""
    t = RandomFrequencyFilter(filters=filters, apply=True)
    batch = len(imgs)

    def one_batch():
        for img in imgs:
            out = t(dict(img=[img]))
        return out

    for _ in range(warmup):
        one_batch()
    start = time.perf_counter()
    for _ in range(iters):
        one_batch()
    elapsed = time.perf_counter() - start
    return dict(seconds=elapsed, images=batch * iters)


def bench_batched(imgs: np.ndarray, filters: List[dict], iters: int,
                  warmup: int, device: str) -> Dict:
    """(b)/(c) folk.frequency.filter_images on a whole batch."""
    t = RandomFrequencyFilter(filters=filters)
    x = torch.from_numpy(imgs).permute(0, 3, 1, 2).float().div_(255.)
    x = x.contiguous().to(device)
    batch = x.shape[0]
    # A fresh draw per timed batch, made before timing. The choices stay
    # on the host, as the data pipeline delivers them in training: choices
    # on the GPU would add a device-to-host copy (a sync) to every call.
    choices = [draw_choices(t, batch) for _ in range(iters + warmup)]
    cuda = device.startswith('cuda')
    for k, p in choices[:warmup]:
        filter_images(x, k, p)
    if cuda:
        torch.cuda.synchronize()
    start = time.perf_counter()
    for k, p in choices[warmup:]:
        filter_images(x, k, p)
    if cuda:
        torch.cuda.synchronize()
    elapsed = time.perf_counter() - start
    return dict(seconds=elapsed, images=batch * iters)


def markdown_table(rows: List[Dict], meta: Dict) -> str:
    lines = [
        '| path | device | size | batch | images/s | ms / batch | '
        'x transform |', '| --- | --- | ---: | ---: | ---: | ---: | ---: |'
    ]
    for r in rows:
        speedup = ('-' if r.get('speedup_vs_transform') is None else
                   f"{r['speedup_vs_transform']:.1f}")
        lines.append(f"| {r['path']} | {r['device']} | {r['size']} | "
                     f"{r['batch']} | {r['images_per_s']:,.0f} | "
                     f"{r['ms_per_batch']:.1f} | {speedup} |")
    notes = [
        '', f"filters: {meta['filters']}; images: {meta['images']}; "
        f"{meta['iters']} timed batches after {meta['warmup']} warm-up; "
        f"torch {meta['torch']}, {meta['torch_threads']} CPU thread(s) of "
        f"{meta['cpu_count']} visible (machine possibly shared: compare "
        'rows of one run, not across runs)' +
        (f"; GPU: {meta['gpu']}" if meta.get('gpu') else '') + '.',
        'transform = RandomFrequencyFilter(apply=True), one image per call; '
        'batched = folk.frequency.filter_images on the whole batch. '
        '"x transform" = images/s relative to the transform path at the '
        'same size, same run.'
    ]
    return '\n'.join(lines + notes) + '\n'


def run(args: argparse.Namespace) -> Dict:
    if args.threads:
        torch.set_num_threads(args.threads)
    rng = np.random.RandomState(args.seed)
    np.random.seed(args.seed)
    devices = []
    for d in args.device:
        if d == 'cuda' and not torch.cuda.is_available():
            print(
                'CUDA not available: skipping the CUDA batched path',
                file=sys.stderr)
            continue
        devices.append(d)
    rows, source = [], None
    for size in args.sizes:
        imgs, source = load_images(args.data_root, args.batch, size, rng)
        filters = make_filters(args.filters, size)
        base = None
        if not args.no_transform:
            res = bench_transform(imgs, filters, args.iters, args.warmup)
            base = res['images'] / res['seconds']
            rows.append(
                dict(
                    path='transform',
                    device='cpu',
                    size=size,
                    batch=args.batch,
                    **res))
        for d in devices:
            res = bench_batched(imgs, filters, args.iters, args.warmup, d)
            rows.append(
                dict(
                    path='batched',
                    device=d,
                    size=size,
                    batch=args.batch,
                    **res))
        for r in rows:
            if r['size'] != size:
                continue
            r['images_per_s'] = r['images'] / r['seconds']
            r['ms_per_batch'] = 1e3 * r['seconds'] / args.iters
            r['speedup_vs_transform'] = (None if base is None else
                                         r['images_per_s'] / base)
    meta = dict(
        date=datetime.datetime.now().isoformat(timespec='seconds'),
        filters=args.filters,
        images=source,
        sizes=args.sizes,
        batch=args.batch,
        iters=args.iters,
        warmup=args.warmup,
        torch=torch.__version__,
        numpy=np.__version__,
        python=platform.python_version(),
        machine=platform.machine(),
        processor=platform.processor() or platform.machine(),
        torch_threads=torch.get_num_threads(),
        cpu_count=os.cpu_count(),
        gpu=(torch.cuda.get_device_name(0) if 'cuda' in devices else None))
    return dict(meta=meta, results=rows)


def main(argv: Optional[List[str]] = None) -> Dict:
    args = parse_args(argv)
    report = run(args)
    table = markdown_table(report['results'], report['meta'])
    write_report(args.out, report, '# Frequency-filter throughput\n\n' + table)
    return report


if __name__ == '__main__':
    main()
