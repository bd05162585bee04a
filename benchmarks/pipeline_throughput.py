"""Data-pipeline cost per image on one CPU core: FOLK vs MFM.

Runs the pre-training configs' ``train_pipeline`` (loading, the two FOLK
views or MFM's single crop, the filter choice, packing) on real images in
one process with one thread, timing every transform, and prints a table
(and JSON). ``folk_pillow_jitter`` is FOLK's pipeline with MMPretrain's
default (pillow) ``ColorJitter`` backend instead of cv2. Divide a GPU's
pre-training images/s by the images/s per core printed here to get the
data-loader workers it needs; MMEngine's log shows ``data_time`` per
iteration when the loader falls behind.

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

FOLK_CFG = 'configs/_base_/datasets/imagenet_bs128_folk.py'
# pipeline name -> (dataset config, FOLKViews options changed)
PIPELINES = {
    'folk': (FOLK_CFG, {}),
    'folk_pillow_jitter': (FOLK_CFG, dict(jitter_backend='pillow')),
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


def build_pipeline(method: str) -> list:
    """The transforms of ``method``'s pre-training ``train_pipeline``."""
    path, views_options = PIPELINES[method]
    pipeline = Config.fromfile(osp.join(REPO, path)).train_pipeline
    for step in pipeline:
        if step['type'] == 'FOLKViews':
            step.update(views_options)
    return [TRANSFORMS.build(t) for t in pipeline]


def run_once(transforms: list, files: list, spent: list) -> dict:
    """Run every image through ``transforms``; add seconds to ``spent``."""
    for path in files:
        results = dict(img_path=path)
        for i, t in enumerate(transforms):
            tic = time.perf_counter()
            results = t(results)
            spent[i] += time.perf_counter() - tic
    return results


def time_pipelines(methods: list,
                   files: list,
                   rounds: int = 3,
                   warmup: int = 5) -> list:
    """Per-transform milliseconds per image and images/s on one core.

    The pipelines take turns, ``rounds`` times over all ``files``, so a
    slow phase of a shared machine hits every pipeline alike.
    """
    pipelines = {m: build_pipeline(m) for m in methods}
    spent = {m: [0.0] * len(t) for m, t in pipelines.items()}
    total = dict.fromkeys(methods, 0.0)
    last = {}
    for method, transforms in pipelines.items():
        run_once(transforms, files[:warmup], [0.0] * len(transforms))
    for _ in range(rounds):
        for method, transforms in pipelines.items():
            start = time.perf_counter()
            last[method] = run_once(transforms, files, spent[method])
            total[method] += time.perf_counter() - start
    rows = []
    for method, transforms in pipelines.items():
        n = len(files) * rounds
        views = last[method]['inputs']
        views = views if isinstance(views, list) else [views]
        rows.append(dict(
            method=method,
            images=n,
            views=len(views),
            view_shape=list(views[0].shape),
            ms_per_image=1000 * total[method] / n,
            images_per_s_per_core=n / total[method],
            steps=[dict(transform=type(t).__name__, ms=1000 * s / n)
                   for t, s in zip(transforms, spent[method])]))
    return rows


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
    p.add_argument('--images', type=int, default=200)
    p.add_argument('--rounds', type=int, default=3)
    p.add_argument('--methods', default='folk,folk_pillow_jitter,mfm',
                   help=f'comma-separated, from {sorted(PIPELINES)}')
    p.add_argument('--out', default=None, help='JSON output path')
    args = p.parse_args()
    torch.set_num_threads(1)
    cv2.setNumThreads(1)
    init_default_scope('mmpretrain')
    files = find_images(args.data, args.images)
    rows = time_pipelines(args.methods.split(','), files, args.rounds)
    header = (f'{len(files)} images from {osp.relpath(args.data, REPO)}, '
              f'{args.rounds} rounds taking turns, one thread, '
              f'{platform.processor() or platform.machine()}')
    text = table(rows, header)
    write_report(args.out, dict(config=vars(args), rows=rows), text)


if __name__ == '__main__':
    main()
