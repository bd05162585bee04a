"""Pre-training step throughput and peak memory: FOLK vs MFM vs supervised.

All three steps use the same backbone and run in one process on one device,
so their ratios are comparable. Data loading is excluded: every method's
fixed batch is made on the device before timing (FOLK / MFM / MAE: uint8
views, supervised: float images), so no method pays a host-to-device copy
inside its timed step (in training the data loader's pinned, non-blocking
copy overlaps with compute). The FOLK / MFM steps include the on-device
frequency filter
(data preprocessor), the model and the optimizer step, through the same
``model.train_step`` + optim wrapper path the Runner uses. The supervised
step is plain PyTorch: backbone + linear head, cross-entropy, AdamW.
The methods take turns (A B A B ...; ``--rounds``), so that machine load
cannot decide their ratio. Peak memory (CUDA) is ``max_memory_allocated``
during the method's timed rounds, minus what was allocated when each round
started (the other methods' models and optimizers).

Examples::

    # GPU, the headline setting (ViT-B/16, 224 px, 128 images, bf16)
    python benchmarks/pretrain_throughput.py --arch b --batch 128
    # CPU smoke run
    python benchmarks/pretrain_throughput.py --arch tiny --img-size 64 \\
        --patch 8 --batch 16 --iters 3 --device cpu
"""
import argparse
import contextlib
import gc
import os.path as osp
import platform
import time

import mmpretrain  # noqa: E402
import torch
from benchmark_report import write_report  # noqa: E402
from mmengine.config import Config  # noqa: E402
from mmengine.logging import MessageHub  # noqa: E402
from mmengine.optim import AmpOptimWrapper, OptimWrapper  # noqa: E402
from mmpretrain.registry import MODELS  # noqa: E402
from mmpretrain.structures import DataSample  # noqa: E402

import folk  # noqa: E402,F401  (on PYTHONPATH or installed)

ARCHS = {
    'b': ('b', 768),
    's': ('deit-small', 384),
    'tiny':
    (dict(embed_dims=192, num_layers=4, num_heads=3,
          feedforward_channels=768), 192),
    # one 32-d layer: dry runs of the script (benchmarks/gpu_checks.sh)
    'nano':
    (dict(embed_dims=32, num_layers=1, num_heads=2,
          feedforward_channels=64), 32),
}
MEAN = [123.675, 116.28, 103.53]
STD = [58.395, 57.12, 57.375]


def model_cfg(method, arch, img_size, patch, out_dim):
    arch_cfg, dim = ARCHS[arch]
    backbone = dict(
        type='VisionTransformer',
        arch=arch_cfg,
        img_size=img_size,
        patch_size=patch,
        out_type='raw')
    cfg = dict(
        type=method.upper(),
        backbone=backbone,
        neck=dict(
            type='SimMIMLinearDecoder', in_channels=dim, encoder_stride=patch),
        head=dict(type='MFMHead', loss=dict(type='FrequencyLoss')),
        data_preprocessor=dict(mean=MEAN, std=STD, to_rgb=True))
    if method == 'folk':
        cfg.update(
            projector=dict(
                type='DINOProjector', in_channels=dim, out_channels=out_dim),
            distill_head=dict(
                type='DistillHead',
                loss=dict(type='DistillLoss', out_dim=out_dim)))
    return cfg


def make_batch(batch, size, views, device):
    """A collated FOLK (2 views) / MFM (1 view) batch, views on ``device``.

    The filter choices stay in the data samples' metainfo (host), as the
    data pipeline delivers them.
    """
    inputs = [
        torch.randint(0, 256, (batch, 3, size, size),
                      dtype=torch.uint8).to(device) for _ in range(views)
    ]
    samples = []
    for i in range(batch):
        s = DataSample()
        kinds = ['com', 'rcom'
                 ] if views == 2 else ['lowpass' if i % 2 else 'highpass']
        params = [0.01] * views if views == 2 else [16.0 * size / 224]
        s.set_metainfo(dict(freq_kind=kinds, freq_param=params))
        samples.append(s)
    return dict(inputs=inputs, data_samples=samples)


class Supervised(torch.nn.Module):
    """The plain supervised step's model: ViT + linear classifier."""

    def __init__(self, arch, img_size, patch):
        super().__init__()
        arch_cfg, dim = ARCHS[arch]
        self.backbone = MODELS.build(
            dict(
                type='VisionTransformer',
                arch=arch_cfg,
                img_size=img_size,
                patch_size=patch,
                out_type='cls_token'))
        self.head = torch.nn.Linear(dim, 1000)

    def forward(self, x):
        return self.head(self.backbone(x)[-1])


def mae_cfg(args):
    """MMPretrain's own MAE ViT-B/16 (its shipped config): a reference for
    the framework path, ViT-B/16 at 224 px only."""
    if (args.arch, args.img_size, args.patch) != ('b', 224, 16):
        raise ValueError("--methods mae: MMPretrain's MAE config is ViT-B/16 "
                         "at 224 px (--arch b --img-size 224 --patch 16)")
    path = osp.join(
        osp.dirname(mmpretrain.__file__), '.mim', 'configs', 'mae',
        'mae_vit-base-p16_8xb512-amp-coslr-300e_in1k.py')
    cfg = Config.fromfile(path)
    return dict(cfg.model, data_preprocessor=cfg.data_preprocessor)


def compile_options(args):
    """``compile_backbone`` value of ``args``: False, True or a dict."""
    if not getattr(args, 'compile', False):
        return False
    backend = getattr(args, 'compile_backend', None)
    return dict(backend=backend) if backend else True


def build_model(method, args, init_weights=True):
    """The model of ``method`` on the CPU.

    ``init_weights=False`` skips weight initialisation (cost estimates:
    values do not matter).
    """
    if method == 'supervised':
        return Supervised(args.arch, args.img_size, args.patch)
    if method == 'mae':
        cfg = mae_cfg(args)
    else:
        cfg = model_cfg(method, args.arch, args.img_size, args.patch,
                        args.out_dim)
        cfg['compile_backbone'] = compile_options(args)  # student, teacher
    model = MODELS.build(cfg)
    if init_weights:
        model.init_weights()
    return model


def make_optim(params, device, dtype, clip=True):
    opt = torch.optim.AdamW(
        params, lr=1e-4, betas=(0.9, 0.95), weight_decay=0.05)
    clip_grad = dict(max_norm=3.0) if clip else None
    if device.type == 'cuda' and dtype != 'fp32':
        return AmpOptimWrapper(
            optimizer=opt,
            dtype='bfloat16' if dtype == 'bf16' else 'float16',
            loss_scale='dynamic' if dtype == 'fp16' else dict(enabled=False),
            clip_grad=clip_grad)
    return OptimWrapper(optimizer=opt, clip_grad=clip_grad)


def make_step(method, model, args, device, clip=True):
    """Return ``(step, inputs)`` for ``model`` (already on ``device``).

    ``step`` runs one training step; ``inputs`` are the tensors it reads.
    ``clip=False`` leaves out gradient clipping (fake tensors cannot read
    the norm).
    """
    if method == 'supervised':
        params = list(model.parameters())
        opt = torch.optim.AdamW(params, lr=1e-4, weight_decay=0.05)
        x = torch.randn(
            args.batch, 3, args.img_size, args.img_size, device=device)
        y = torch.randint(0, 1000, (args.batch, ), device=device)
        use_amp = device.type == 'cuda' and args.dtype != 'fp32'
        amp_dtype = torch.bfloat16 if args.dtype == 'bf16' else torch.float16
        scaler = torch.amp.GradScaler(enabled=use_amp and args.dtype == 'fp16')
        if args.compile:
            options = compile_options(args)
            model.backbone.compile(
                **(options if isinstance(options, dict) else {}))

        def step():
            ctx = (
                torch.autocast('cuda', dtype=amp_dtype)
                if use_amp else contextlib.nullcontext())
            with ctx:
                loss = torch.nn.functional.cross_entropy(model(x), y)
            scaler.scale(loss).backward()
            if clip:
                scaler.unscale_(opt)
                torch.nn.utils.clip_grad_norm_(params, 3.0)
            scaler.step(opt)
            scaler.update()
            opt.zero_grad(set_to_none=True)  # as mmengine's OptimWrapper

        return step, [x, y]

    optim = make_optim([p for p in model.parameters() if p.requires_grad],
                       device, args.dtype, clip)
    if method == 'mae':  # one uint8 batch, no filter metainfo
        data = dict(
            inputs=torch.randint(
                0,
                256, (args.batch, 3, args.img_size, args.img_size),
                dtype=torch.uint8,
                device=device),
            data_samples=[DataSample() for _ in range(args.batch)])

        def step():
            model.train_step(data, optim)

        return step, [data['inputs']]
    views = 2 if method == 'folk' else 1
    data = make_batch(args.batch, args.img_size, views, device)

    def step():
        model.train_step(data, optim)

    return step, data['inputs']


def _sync(device) -> None:
    if device.type == 'cuda':
        torch.cuda.synchronize()


def measure(methods, args, device):
    """Time ``methods`` taking turns (A B A B ...) for ``args.rounds``
    rounds of ``args.iters`` steps each, so that a change of machine load
    during the run falls on every method alike.

    Every method's model and optimizer are built (and warmed up) first and
    stay alive; its peak memory (CUDA) is the largest
    ``max_memory_allocated`` over its own rounds minus what was allocated
    when each round started (the other methods' models).

    Returns:
        list[dict]: One row per method: images/s and ms per step over all
        its rounds, ``round_ms`` (ms per step of each round) and the peak.
    """
    MessageHub.get_current_instance().update_info('max_iters', 10**6)
    steps, keep_alive = {}, []
    for method in methods:
        torch.manual_seed(0)
        model = build_model(method, args).to(device)
        step, _ = make_step(method, model, args, device)
        for _ in range(args.warmup):
            step()
        steps[method] = step
        keep_alive.append(model)
    gc.collect()
    elapsed = {m: [] for m in methods}
    peak = {m: float('nan') for m in methods}
    for _ in range(args.rounds):
        for method in methods:
            held = 0
            if device.type == 'cuda':
                torch.cuda.reset_peak_memory_stats()
                held = torch.cuda.memory_allocated()
            _sync(device)
            start = time.perf_counter()
            for _ in range(args.iters):
                steps[method]()
            _sync(device)
            elapsed[method].append(time.perf_counter() - start)
            if device.type == 'cuda':
                used = (torch.cuda.max_memory_allocated() - held) / 2**30
                peak[method] = used if peak[method] != peak[method] else max(
                    peak[method], used)
    rows = []
    for method in methods:
        total = sum(elapsed[method])
        n = args.iters * args.rounds
        rows.append(
            dict(
                method=method,
                images_per_s=args.batch * n / total,
                step_ms=1000 * total / n,
                round_ms=[1000 * t / args.iters for t in elapsed[method]],
                peak_mem_gib=peak[method]))
    del keep_alive, steps
    return rows


def main():
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--arch', choices=sorted(ARCHS), default='b')
    p.add_argument('--img-size', type=int, default=224)
    p.add_argument('--patch', type=int, default=16)
    p.add_argument('--batch', type=int, default=128)
    p.add_argument('--out-dim', type=int, default=65536)
    p.add_argument(
        '--iters', type=int, default=20, help='timed steps per round')
    p.add_argument(
        '--rounds',
        type=int,
        default=2,
        help='rounds in which the methods take turns (A B A B ...)')
    p.add_argument('--warmup', type=int, default=5)
    p.add_argument('--dtype', choices=['bf16', 'fp16', 'fp32'], default='bf16')
    p.add_argument(
        '--device', default='cuda' if torch.cuda.is_available() else 'cpu')
    p.add_argument(
        '--compile',
        action='store_true',
        help='compile the backbone of every method (FOLK / MFM: the '
        'compile_backbone option)')
    p.add_argument(
        '--compile-backend',
        default=None,
        help='torch.compile backend (default: inductor); '
        '"eager" only traces (fast CPU dry runs)')
    p.add_argument(
        '--methods',
        default='supervised,mfm,folk',
        help='comma-separated from supervised, mfm, folk and mae '
        "(MMPretrain's own MAE ViT-B/16, for reference)")
    p.add_argument('--out', default=None, help='JSON output path')
    args = p.parse_args()
    device = torch.device(args.device)
    rows = measure(args.methods.split(','), args, device)
    base = next((r for r in rows if r['method'] == 'supervised'), None)
    for r in rows:
        r['ratio_vs_supervised'] = (
            r['images_per_s'] / base['images_per_s'] if base else float('nan'))
    name = (
        torch.cuda.get_device_name(device) if device.type == 'cuda' else
        platform.processor() or platform.machine())
    # the CPU path trains in float32 whatever --dtype says (make_optim)
    dtype = args.dtype if device.type == 'cuda' else 'fp32'
    header = (f'device: {name} ({device.type}), arch {args.arch}, '
              f'{args.img_size} px, patch {args.patch}, batch {args.batch}, '
              f'dtype {dtype}, compile {args.compile}, {args.rounds} rounds '
              f'of {args.iters} steps, methods taking turns')
    lines = [
        header, '', '| method | images/s | step (ms) | ms per round | '
        'ratio vs supervised | peak memory (GiB) |',
        '|---|---|---|---|---|---|'
    ]
    for r in rows:
        per_round = ' / '.join(f'{ms:.0f}' for ms in r['round_ms'])
        lines.append(f"| {r['method']} | {r['images_per_s']:.1f} | "
                     f"{r['step_ms']:.1f} | {per_round} | "
                     f"{r['ratio_vs_supervised']:.3f} | "
                     f"{r['peak_mem_gib']:.2f} |")
    table = '\n'.join(lines)
    write_report(args.out,
                 dict(config=vars(args), dtype=dtype, device=name, rows=rows),
                 table)


if __name__ == '__main__':
    main()
