"""Cost of the online k-NN monitor relative to pre-training, measured.

The monitor's cost per evaluation, per process, is the forward passes of
the bank and query images through each scored backbone plus the k-NN
scoring; training costs ``interval`` steps in between. On any device

    fraction = E / (interval * S + E),
    E = encoders * (n_bank + n_query) / W * t_feat + t_knn,
    S = B * t_img,

with ``W`` processes, ``B`` images per process and step, ``t_img`` the
training time per image (FOLK: two filtered views through the student,
forward + backward, two unfiltered views through the teacher, the decoder,
the frequency loss, the optimizer step), ``t_feat`` the forward time of one
image through one backbone at the monitor's resolution and ``t_knn`` the
scoring time. The ratio ``t_feat / t_img`` depends on the model, not much
on the device (both are matrix products of the same ViT); this script
measures both, interleaved, on this machine, for the config's model at the
config's resolution, and ``t_knn`` at the config's bank / query sizes (on
a slice of the queries, scaled linearly). Data loading is not counted: the
monitor's loader runs ``num_workers`` processes like training does.

Example (ViT-B/16, 224 px, the FOLK ImageNet config)::

    python benchmarks/knn_monitor_cost.py \\
        configs/folk/folk_vit-base-p16_8xb128-amp-coslr-300e_in1k.py \\
        --out benchmarks/results/knn_monitor_cost_cpu.json
"""
import argparse
import statistics
import time
from typing import Dict, List, Optional, Sequence

import torch
from benchmark_report import write_report
from mmengine.config import Config
from mmengine.logging import MessageHub
from mmengine.optim import OptimWrapper
from mmengine.registry import DefaultScope
from mmpretrain.structures import DataSample

from folk.engine.device import adapt_cfg_to_device
from folk.evaluation import build_model, global_features, knn_predict

IMAGENET_CLASSES = 1000


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument(
        'config', help='pre-training config with a '
        'KNNMonitorHook')
    parser.add_argument(
        '--train-batch',
        type=int,
        default=2,
        help='images per measured training step')
    parser.add_argument(
        '--feat-batch',
        type=int,
        default=8,
        help='images per measured feature forward')
    parser.add_argument(
        '--repeats',
        type=int,
        default=3,
        help='timed repeats (after one warm-up)')
    parser.add_argument(
        '--num-classes',
        type=int,
        default=IMAGENET_CLASSES,
        help='classes of the data set (bank / query sizes '
        'are per class)')
    parser.add_argument(
        '--knn-queries',
        type=int,
        default=1000,
        help='queries actually scored (then scaled)')
    parser.add_argument('--threads', type=int, default=None)
    parser.add_argument('--out', default=None, help='JSON result')
    return parser.parse_args(argv)


def make_batch(batch: int, size: int, views: int) -> Dict:
    """A collated FOLK batch (uint8 views, Com / RCom filters)."""
    g = torch.Generator().manual_seed(0)
    inputs = [
        torch.randint(
            0, 256, (batch, 3, size, size), generator=g, dtype=torch.uint8)
        for _ in range(views)
    ]
    samples = []
    for i in range(batch):
        s = DataSample()
        s.set_metainfo(
            dict(
                freq_kind=[('com', 'rcom')[(i + v) % 2] for v in range(views)],
                freq_param=[0.01] * views))
        samples.append(s)
    return dict(inputs=inputs, data_samples=samples)


def timed(fn, repeats: int) -> float:
    """Median wall time of ``fn`` over ``repeats`` calls (after one)."""
    fn()
    times: List[float] = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main(argv: Optional[Sequence[str]] = None) -> Dict:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    cfg = adapt_cfg_to_device(Config.fromfile(args.config))
    DefaultScope.get_instance('knn_cost', scope_name='mmpretrain')
    hook = next(h for h in cfg.custom_hooks if h['type'] == 'KNNMonitorHook')
    size = cfg.model.backbone.get('img_size', 224)
    crop = next(t['crop_size'] for t in hook['pipeline']
                if t['type'] == 'CenterCrop')
    hub = MessageHub.get_current_instance()
    hub.update_info('max_iters', 1000)
    hub.update_info('iter', 0)

    torch.manual_seed(0)
    model = build_model(cfg)
    model.init_weights()
    optim = OptimWrapper(
        torch.optim.AdamW([p for p in model.parameters() if p.requires_grad],
                          lr=1e-4))
    views = 2 if hasattr(model, 'teacher') else 1
    batch = make_batch(args.train_batch, size, views)
    images = torch.randn(args.feat_batch, 3, crop, crop)

    def train_step():
        model.train()
        model.train_step(batch, optim)

    @torch.no_grad()
    def feature_step():
        model.eval()
        global_features(model.backbone, images)

    t_step = timed(train_step, args.repeats)
    t_fwd = timed(feature_step, args.repeats)
    t_img = t_step / args.train_batch
    t_feat = t_fwd / args.feat_batch

    n_bank = hook.get('bank_per_class', 20) * args.num_classes
    n_query = hook.get('query_per_class', 10) * args.num_classes
    encoders = len([
        e for e in hook.get('encoders', ('teacher', 'student'))
        if e == 'student' or hasattr(model, 'teacher')
    ])
    with torch.no_grad():
        model.eval()
        dim = global_features(model.backbone, images[:1]).shape[-1]
    g = torch.Generator().manual_seed(0)
    bank = torch.randn(n_bank, dim, generator=g)
    labels = torch.randint(0, args.num_classes, (n_bank, ), generator=g)
    queries = torch.randn(args.knn_queries, dim, generator=g)
    t_knn_slice = timed(
        lambda: knn_predict(bank, labels, queries, args.num_classes), 1)
    t_knn = encoders * t_knn_slice * n_query / args.knn_queries

    world = int(cfg.get('num_gpus', 8))  # the configs' 8 x 128 recipe
    per_gpu = cfg.train_dataloader.batch_size
    interval = hook['interval']
    eval_s = encoders * (n_bank + n_query) / world * t_feat + t_knn
    step_s = per_gpu * t_img
    fraction = eval_s / (interval * step_s + eval_s)
    min_interval = eval_s * (1 - 0.02) / (0.02 * step_s)
    data = dict(
        config=args.config,
        device='cpu',
        threads=torch.get_num_threads(),
        train_batch=args.train_batch,
        feat_batch=args.feat_batch,
        img_size=size,
        crop=crop,
        t_step_s=t_step,
        t_img_s=t_img,
        t_feat_s=t_feat,
        feat_over_img=t_feat / t_img,
        t_knn_s=t_knn,
        n_bank=n_bank,
        n_query=n_query,
        encoders=encoders,
        world=world,
        batch_per_process=per_gpu,
        interval=interval,
        eval_s_per_process=eval_s,
        step_s=step_s,
        fraction=fraction,
        min_interval_for_2pct=min_interval)
    table = '\n'.join([
        '| quantity | value |',
        '|---|---|',
        f'| training step, {args.train_batch} images x {views} views, '
        f'{size} px | {t_step:.2f} s |',
        f'| t_img (training time per image) | {t_img:.3f} s |',
        f'| t_feat (one backbone forward per image, {crop} px) | '
        f'{t_feat:.4f} s |',
        f'| t_feat / t_img | {t_feat / t_img:.4f} |',
        f'| bank / query images | {n_bank} / {n_query} |',
        f'| k-NN scoring, {encoders} encoders (scaled from '
        f'{args.knn_queries} queries) | {t_knn:.2f} s |',
        f'| E per process ({world} processes) | {eval_s:.1f} s |',
        f'| S = {per_gpu} x t_img | {step_s:.1f} s |',
        f'| interval | {interval} iterations |',
        f'| fraction E / (interval S + E) | {100 * fraction:.2f} % |',
        f'| smallest interval for 2 % | {min_interval:.0f} iterations |',
    ])
    write_report(args.out, data, table)
    return data


if __name__ == '__main__':
    main()
