"""Data-pipeline cost per image on one CPU core: FOLK vs MFM.

Runs the pre-training configs' ``train_pipeline`` (loading, the two FOLK
views or MFM's single crop, the filter choice, packing) on real images in
one process with one thread, timing every transform, and prints a table
(and JSON). Divide a GPU's pre-training images/s by the images/s per core
printed here to get the data-loader workers it needs; MMEngine's log shows
``data_time`` per iteration when the loader falls behind.

Examples::

    python benchmarks/pipeline_throughput.py \\
        --data ../shared/data/imagenette128 \\
        --out benchmarks/results/pipeline_throughput_cpu.json
"""
import argparse
import glob
import os.path as osp
import platform
import sys
import time

import cv2
import torch

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
sys.path.insert(0, osp.join(REPO, 'projects'))
import folk  # noqa: E402,F401
from mmengine.config import Config  # noqa: E402
from mmengine.registry import init_default_scope  # noqa: E402
from mmpretrain.registry import TRANSFORMS  # noqa: E402
sys.path.insert(0, osp.dirname(osp.abspath(__file__)))
from benchmark_report import write_report  # noqa: E402

CONFIGS = {
    'folk': 'configs/_base_/datasets/imagenet_bs128_folk.py',
    'mfm': 'configs/_base_/datasets/imagenet_bs128_mfm.py',
}


def find_images(root: str, limit: int) -> list:
    """The first ``limit`` JPEG / PNG files under ``root`` (sorted)."""
    files = sorted(
        f for ext in ('jpg', 'jpeg', 'JPEG', 'png')
        for f in glob.glob(osp.join(root, '**', f'*.{ext}'), recursive=True))
    if not files:
        raise FileNotFoundError(f'--data {root}: no .jpg / .png images')
    return files[:limit]


def time_pipeline(method: str, files: list, warmup: int = 5) -> dict:
    """Mean milliseconds per image of each transform of ``method``'s
    pipeline, and images/s for the whole pipeline on one core."""
    cfg = Config.fromfile(osp.join(REPO, CONFIGS[method]))
    transforms = [TRANSFORMS.build(t) for t in cfg.train_pipeline]
    for path in files[:warmup]:
        results = dict(img_path=path)
        for t in transforms:
            results = t(results)
    spent = [0.0] * len(transforms)
    start = time.perf_counter()
    for path in files:
        results = dict(img_path=path)
        for i, t in enumerate(transforms):
            tic = time.perf_counter()
            results = t(results)
            spent[i] += time.perf_counter() - tic
    total = time.perf_counter() - start
    steps = [
        dict(transform=type(t).__name__, ms=1000 * s / len(files))
        for t, s in zip(transforms, spent)
    ]
    views = results['inputs']
    views = views if isinstance(views, list) else [views]
    return dict(
        method=method,
        images=len(files),
        views=len(views),
        view_shape=list(views[0].shape),
        ms_per_image=1000 * total / len(files),
        images_per_s_per_core=len(files) / total,
        steps=steps)


def table(rows: list, header: str) -> str:
    lines = [
        header, '', '| pipeline | views | images/s per core | ms / image | '
        'ms per transform |', '|---|---|---|---|---|'
    ]
    for r in rows:
        steps = ', '.join(f"{s['transform']} {s['ms']:.2f}"
                          for s in r['steps'])
        lines.append(f"| {r['method']} | {r['views']} x "
                     f"{'x'.join(map(str, r['view_shape']))} | "
                     f"{r['images_per_s_per_core']:.1f} | "
                     f"{r['ms_per_image']:.2f} | {steps} |")
    return '\n'.join(lines)


def main():
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--data', default=osp.join(REPO, '..', 'shared', 'data',
                                              'imagenette128'),
                   help='folder of images (searched recursively)')
    p.add_argument('--images', type=int, default=300)
    p.add_argument('--methods', default='folk,mfm')
    p.add_argument('--out', default=None, help='JSON output path')
    args = p.parse_args()
    torch.set_num_threads(1)
    cv2.setNumThreads(1)
    init_default_scope('mmpretrain')
    files = find_images(args.data, args.images)
    rows = [time_pipeline(m, files) for m in args.methods.split(',')]
    header = (f'{len(files)} images from {osp.relpath(args.data, REPO)}, one '
              f'thread, {platform.processor() or platform.machine()}')
    text = table(rows, header)
    print(text)
    write_report(args.out, dict(config=vars(args), rows=rows), text)


if __name__ == '__main__':
    main()
