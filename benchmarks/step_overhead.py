"""What a FOLK training step costs outside the model: the preprocessor's
device operations, blocking copies, memory traffic and host time, the
sync-inducing calls per iteration through the Runner, and the Runner's host
time per iteration against a plain PyTorch loop.

Part 1, the configured preprocessor (``--config``, default the ViT-B
config), on the batch structure of that config: ``--images`` decoded images
of ImageNet-like sizes (375x500, 333x500, 500x375, 500x500, 480x640; random
uint8), the config's ``train_pipeline`` after loading (``FOLKViews`` draws,
``RandomFrequencyFilter``, ``PackInputs``) and its ``collate_fn``:

- device ops, blocking host-to-device copies and memory traffic: the
  preprocessor runs on ``meta`` tensors under a ``TorchDispatchMode`` that
  records every non-view operation on a device tensor (allocations without
  a fill, which launch no kernel, are left out), the bytes of its
  tensor inputs and outputs (gathers count their whole table), and every
  host-to-device copy with ``non_blocking=False``; a spy on
  ``torch.as_tensor`` / ``torch.tensor`` counts the copies made inside
  tensor constructors from Python data (lists, numbers), which a dispatch
  mode cannot see.
  ``folk.frequency.host_to_device`` takes its CUDA branch (a non-blocking
  copy from pinned memory; pinning itself needs CUDA). Ops are split into
  the crops, the photometric augmentation and the rest (the copy of the
  batch, RGB, filters, normalisation), and counted at ``--images`` and at
  twice as many;
- host time with compute removed: the whole preprocessor on ``meta``
  tensors of the same batch (every operation is dispatched and planned as
  on a device, none is computed), best of 5; on CUDA each operation adds
  its launch (a few microseconds).

Part 2, through MMEngine's Runner (the demo config, shrunk: batch
``--runner-batch``, ``--iters`` iterations, logging every
``--log-interval``), on CPU:

- sync-inducing calls per iteration (``item`` / ``float`` / ``bool`` /
  ``tolist``, i.e. ``aten._local_scalar_dense``, and ``nonzero``) in the
  model, the optimizer wrapper and the hooks, outside the preprocessor
  (measured in part 1 on ``meta``, where such a call fails) and outside
  ``optimizer.step`` (torch keeps the step counters of its non-fused
  optimizers on the host, also on CUDA), in the first
  half of the iterations, split into iterations at a log interval and
  between them (on CPU every tensor there would live on the device);
- the Runner's host time per iteration outside the model: the median time
  of a Runner iteration (second half, not counted) minus that of a plain
  PyTorch loop (preprocessor, ``loss``, backward, clip, step) over the same
  model and batches.

On CUDA (``--device cuda``) part 1 also times the preprocessor on the
device (mean of 10 calls after a warm-up, synchronised) and counts its
synchronisations with ``torch.cuda.set_sync_debug_mode``.

Examples::

    python benchmarks/step_overhead.py \\
        --out benchmarks/results/step_overhead_cpu.json
"""
import argparse
import contextlib
import copy
import os.path as osp
import platform
import statistics
import time
from collections import defaultdict
from typing import Dict, List, Optional

import numpy as np
import torch
from mmengine.config import Config
from mmengine.registry import FUNCTIONS, init_default_scope
from mmpretrain.registry import MODELS, TRANSFORMS
from torch.utils._python_dispatch import TorchDispatchMode

import folk  # noqa: F401
import folk.frequency

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
from benchmark_report import write_report  # noqa: E402

VIT_B = 'configs/folk/folk_vit-base-p16_8xb128-amp-coslr-300e_in1k.py'
DEMO = 'configs/demo/folk_vit-tiny-p8_1xb32-200i_imagenette128.py'
SIZES = ((375, 500), (333, 500), (500, 375), (500, 500), (480, 640))
# no kernel: views, and allocations without a fill
_SKIP = {
    'lift_fresh', 'detach', 'alias', 'empty', 'empty_strided', 'empty_like'
}
_GATHERS = {'index', 'gather', 'take', 'index_select', 'embedding'}


class OpCounter(TorchDispatchMode):
    """Count non-view ops on device tensors, their bytes and blocking
    host-to-device copies, per ``part``."""

    def __init__(self, host: bool = False) -> None:
        super().__init__()
        self.host = host  # count calls on host tensors too (CPU runs)
        self.part = 'other'
        self.ops: Dict[str, int] = defaultdict(int)
        self.bytes: Dict[str, int] = defaultdict(int)
        self.blocking: Dict[str, int] = defaultdict(int)
        self.syncs = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        name = func.overloadpacket.__name__
        tensors = [
            t for t in torch.utils._pytree.tree_leaves((args, kwargs, out))
            if isinstance(t, torch.Tensor)
        ]
        if name in ('_local_scalar_dense',
                    'nonzero') and (self.host or any(t.device.type != 'cpu'
                                                     for t in tensors)):
            self.syncs += 1
        if func.is_view or name in _SKIP:
            return out
        if not any(t.device.type != 'cpu' for t in tensors):
            return out  # host work
        self.ops[self.part] += 1
        if name in _GATHERS:  # a lookup reads what it writes, not its table
            table = args[0]
            tensors = [t for t in tensors if t is not table]
            outs = [
                t for t in torch.utils._pytree.tree_leaves(out)
                if isinstance(t, torch.Tensor)
            ]
            tensors += outs  # the entries read
        self.bytes[self.part] += sum(t.numel() * t.element_size()
                                     for t in tensors)
        if name == '_to_copy' and args[0].device.type == 'cpu' and \
                not kwargs.get('non_blocking', False):
            self.blocking[self.part] += 1
        if name == 'copy_' and args[1].device.type == 'cpu' and \
                args[0].device.type != 'cpu' and not (
                    args[2] if len(args) > 2 else kwargs.get(
                        'non_blocking', False)):
            self.blocking[self.part] += 1
        return out


@contextlib.contextmanager
def constructor_spy(counter: OpCounter):
    """Count ``torch.as_tensor`` / ``torch.tensor`` calls that copy Python
    data to a device (invisible to a dispatch mode)."""
    originals = {n: getattr(torch, n) for n in ('as_tensor', 'tensor')}

    def wrap(fn):

        def spy(data, *args, **kwargs):
            device = kwargs.get('device')
            # Python data only: tensors and arrays reach the device through
            # a copy the dispatch mode sees
            if device is not None and torch.device(device).type != 'cpu' \
                    and not isinstance(data, (torch.Tensor, np.ndarray)):
                counter.blocking[counter.part] += 1
            return fn(data, *args, **kwargs)

        return spy

    for n, fn in originals.items():
        setattr(torch, n, wrap(fn))
    try:
        yield
    finally:
        for n, fn in originals.items():
            setattr(torch, n, fn)


@contextlib.contextmanager
def parts(counter: OpCounter, pre):
    """Label the counter's ops by part while the preprocessor runs."""
    import folk.models.data_preprocessor as dp
    patched = []

    def label(owner, attr, part, static=False):
        fn = getattr(owner, attr)

        def run(*args, **kwargs):
            old, counter.part = counter.part, part
            try:
                return fn(*args, **kwargs)
            finally:
                counter.part = old

        setattr(owner, attr, staticmethod(run) if static else run)
        patched.append((owner, attr, owner.__dict__[attr] if static else fn))

    for attr, part in (('crop_rows', 'crop'), ('photometric_run',
                                               'photometric')):
        if hasattr(dp, attr):  # folk.views
            label(dp, attr, part)
    cls = type(pre)
    for attr, part in (('_cut', 'crop'), ('_augment', 'photometric')):
        if attr in cls.__dict__:  # per-sample metainfo preprocessor
            label(cls, attr, part, static=True)
    label(pre, 'cast_data', 'batch copy')
    try:
        yield
    finally:
        for owner, attr, fn in reversed(patched):
            if owner is pre:
                del pre.cast_data
            else:
                setattr(owner, attr, fn)


@contextlib.contextmanager
def cuda_host_to_device():
    """``folk.frequency.host_to_device`` as on CUDA (non-blocking), and
    ``torch.autocast`` a no-op on ``meta``."""
    original = folk.frequency.host_to_device

    def non_blocking(tensor, device):
        device = torch.device(device)
        if device.type == 'cpu':
            return tensor
        return tensor.to(device, non_blocking=True)

    autocast = torch.autocast

    def meta_autocast(device_type, *args, **kwargs):
        # autocast has no meta backend: nothing to disable there
        if device_type == 'meta':
            return contextlib.nullcontext()
        return autocast(device_type, *args, **kwargs)

    folk.frequency.host_to_device = non_blocking
    torch.autocast = meta_autocast
    try:
        yield
    finally:
        folk.frequency.host_to_device = original
        torch.autocast = autocast


def load_config(path: str) -> Config:
    cfg = Config.fromfile(
        osp.join(REPO, path) if not osp.isabs(path) else path)
    init_default_scope(cfg.get('default_scope', 'mmpretrain'))
    return cfg


def preprocessor_cfg(cfg: Config) -> dict:
    """The data preprocessor the Runner builds for ``cfg``."""
    pre = copy.deepcopy(cfg.get('data_preprocessor', {}))
    pre.update(cfg.model.get('data_preprocessor', {}))
    return pre


def make_batch(cfg: Config,
               images: int,
               crop: Optional[int] = None,
               tiny: bool = False,
               seed: int = 0) -> dict:
    """A collated batch of the config's pipeline on random images."""
    rng = np.random.default_rng(seed)
    np.random.seed(seed)
    import random
    random.seed(seed)
    steps = copy.deepcopy(cfg.train_pipeline[1:])  # after loading
    for t in steps:
        if t['type'] == 'FOLKViews' and crop is not None:
            t['crop_size'] = crop
    pipeline = [TRANSFORMS.build(t) for t in steps]
    samples = []
    for i in range(images):
        h, w = (12, 16) if tiny else SIZES[i % len(SIZES)]
        img = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
        results = dict(
            img=img,
            img_shape=(h, w),
            ori_shape=(h, w),
            img_path=f'synthetic_{i}.jpg')
        for t in pipeline:
            results = t(results)
        samples.append(results)
    collate = cfg.train_dataloader.get('collate_fn',
                                       dict(type='pseudo_collate'))
    return FUNCTIONS.get(collate['type'])(samples)


def count_preprocessor(cfg: Config, images: int) -> dict:
    """Part 1 on ``meta``: ops, blocking copies, bytes, per part."""
    batch = make_batch(cfg, images)
    pre = MODELS.build(preprocessor_cfg(cfg)).to('meta')
    with cuda_host_to_device():
        pre(copy.deepcopy(batch), training=True)  # tables built once
        counter = OpCounter()
        with parts(counter, pre), constructor_spy(counter), counter:
            out = pre(copy.deepcopy(batch), training=True)
    views = out['inputs']['views']
    names = ['batch copy', 'crop', 'photometric', 'other']
    return dict(
        images=images,
        views=[list(v.shape) for v in views],
        ops={n: counter.ops.get(n, 0)
             for n in names},
        blocking={n: counter.blocking.get(n, 0)
                  for n in names},
        gbytes={n: round(counter.bytes.get(n, 0) / 1e9, 3)
                for n in names},
        total_ops=sum(counter.ops.values()),
        crop_photometric_filter_norm_ops=sum(v for k, v in counter.ops.items()
                                             if k != 'batch copy'),
        total_blocking=sum(counter.blocking.values()),
        total_gbytes=round(sum(counter.bytes.values()) / 1e9, 3),
        syncs=counter.syncs)


def host_ms(cfg: Config, images: int, repeats: int = 5) -> float:
    """Host time of the whole preprocessor with compute removed: on
    ``meta`` tensors (every operation dispatched, none computed), best of
    ``repeats``."""
    batch = make_batch(cfg, images)
    pre = MODELS.build(preprocessor_cfg(cfg)).to('meta')
    best = float('inf')
    with cuda_host_to_device():
        pre(copy.deepcopy(batch), training=True)
        for _ in range(repeats):
            b = copy.deepcopy(batch)
            t0 = time.perf_counter()
            pre(b, training=True)
            best = min(best, time.perf_counter() - t0)
    return round(best * 1e3, 2)


def cuda_rows(cfg: Config, images: int) -> dict:
    """On CUDA: the preprocessor's time and synchronisations."""
    batch = make_batch(cfg, images)
    pre = MODELS.build(preprocessor_cfg(cfg)).cuda()
    for _ in range(2):
        pre(copy.deepcopy(batch), training=True)
    torch.cuda.synchronize()
    copies = [copy.deepcopy(batch) for _ in range(10)]
    t0 = time.perf_counter()
    for b in copies:
        pre(b, training=True)
    torch.cuda.synchronize()
    ms = (time.perf_counter() - t0) / len(copies) * 1e3
    import warnings
    torch.cuda.set_sync_debug_mode('warn')
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter('always')
        pre(copy.deepcopy(batch), training=True)
        torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode(0)
    syncs = sum('synchroniz' in str(w.message) for w in caught)
    return dict(cuda_ms=round(ms, 2), cuda_syncs=syncs)


# ---------------------------------------------------------------------------
# Part 2: through the Runner
# ---------------------------------------------------------------------------
class _Repeat(torch.utils.data.Dataset):
    """The same packed samples, over and over."""

    def __init__(self, samples: list, length: int) -> None:
        self.samples, self.length = samples, length

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, i: int) -> dict:
        return copy.deepcopy(self.samples[i % len(self.samples)])


def _runner_parts(demo: str, batch_size: int, crop: int):
    """Config, packed samples and collate of the shrunk demo config."""
    cfg = load_config(demo)
    cfg.model.backbone.img_size = crop
    rng = np.random.default_rng(0)
    steps = copy.deepcopy(cfg.train_pipeline[1:])
    for t in steps:
        if t['type'] == 'FOLKViews':
            t['crop_size'] = crop
            t['blur_sigma'] = (0.1 * crop / 224, 2.0 * crop / 224)
    pipeline = [TRANSFORMS.build(t) for t in steps]
    samples = []
    for i in range(batch_size):
        img = rng.integers(0, 256, (40, 48, 3), dtype=np.uint8)
        results = dict(
            img=img, img_shape=img.shape[:2], img_path=f'synthetic_{i}.jpg')
        for t in pipeline:
            results = t(results)
        samples.append(results)
    collate = FUNCTIONS.get(
        cfg.train_dataloader.get('collate_fn',
                                 dict(type='pseudo_collate'))['type'])
    return cfg, samples, collate


def runner_rows(batch_size: int,
                iters: int,
                log_interval: int,
                work_dir: str,
                crop: int = 32,
                demo: str = DEMO) -> dict:
    """Part 2: syncs per iteration and the Runner's host overhead."""
    from mmengine.hooks import Hook
    from mmengine.runner import Runner
    cfg, samples, collate = _runner_parts(demo, batch_size, crop)
    loader = torch.utils.data.DataLoader(
        _Repeat(samples, batch_size * (iters + 2)),
        batch_size=batch_size,
        collate_fn=collate,
        num_workers=0)

    counted = iters // 2  # the first half counted, the second timed

    class CountSyncs(Hook):
        priority = 'HIGHEST'

        def __init__(self):
            self.per_iter: List[int] = []
            self.times: List[float] = []
            self.mode = None

        def before_train(self, runner):
            optimizer = runner.optim_wrapper.optimizer  # built by now
            self.step = step = optimizer.step

            def step_uncounted(*args, **kwargs):
                # torch's AdamW / SGD keep their step counters on the host
                # unless fused or capturable: their ``item`` calls are no
                # syncs on CUDA
                if self.mode is None:
                    return step(*args, **kwargs)
                with torch.utils._python_dispatch._disable_current_modes():
                    return step(*args, **kwargs)

            optimizer.step = step_uncounted

        def before_train_iter(self, runner, batch_idx, data_batch=None):
            self.mode = OpCounter(host=True) if runner.iter < counted \
                else None
            if self.mode is not None:
                self.mode.__enter__()
            self.t0 = time.perf_counter()

    class StopCount(Hook):
        priority = 'LOWEST'

        def __init__(self, counter):
            self.counter = counter

        def after_train_iter(self,
                             runner,
                             batch_idx,
                             data_batch=None,
                             outputs=None):
            c = self.counter
            if c.mode is None:
                c.times.append(time.perf_counter() - c.t0)
                return
            c.mode.__exit__(None, None, None)
            c.per_iter.append(c.mode.syncs)

    counter = CountSyncs()
    model_cfg = copy.deepcopy(cfg.model)
    runner = Runner(
        model=model_cfg,
        work_dir=work_dir,
        train_dataloader=loader,
        train_cfg=dict(type='IterBasedTrainLoop', max_iters=iters),
        optim_wrapper=copy.deepcopy(cfg.optim_wrapper),
        param_scheduler=None,
        # the config's default hooks (its runtime-info hook reads the logged
        # values at the log interval), without checkpoints
        default_hooks=dict(
            copy.deepcopy(cfg.default_hooks),
            logger=dict(type='LoggerHook', interval=log_interval),
            checkpoint=None),
        custom_hooks=[
            h for h in copy.deepcopy(cfg.custom_hooks)
            if h['type'] == 'NonFiniteLossHook'
        ],
        log_processor=dict(by_epoch=False),
        default_scope='mmpretrain',
        log_level='WARNING')
    runner.register_hook(counter)
    runner.register_hook(StopCount(counter))
    pre = runner.model.data_preprocessor
    forward = pre.forward

    def paused(*args, **kwargs):  # the preprocessor is counted in part 1
        if counter.mode is None:
            return forward(*args, **kwargs)
        with torch.utils._python_dispatch._disable_current_modes():
            return forward(*args, **kwargs)

    pre.forward = paused
    runner.train()
    pre.forward = forward
    optimizer = runner.optim_wrapper.optimizer
    optimizer.step = counter.step
    per_iter = counter.per_iter
    at_log = [s for i, s in enumerate(per_iter) if (i + 1) % log_interval == 0]
    between = [
        s for i, s in enumerate(per_iter) if (i + 1) % log_interval != 0
    ]
    # a plain loop over the same model and batches
    model = runner.model
    optim = runner.optim_wrapper.optimizer
    clip = cfg.optim_wrapper.get('clip_grad')
    batches = [b for _, b in zip(range(iters - counted), loader)]
    plain = []
    for b in batches:
        t0 = time.perf_counter()
        data = model.data_preprocessor(b, training=True)
        losses = model(**data, mode='loss')
        loss = sum(v for k, v in losses.items() if 'loss' in k)
        loss.backward()
        if clip:
            torch.nn.utils.clip_grad_norm_(model.parameters(),
                                           clip['max_norm'])
        optim.step()
        optim.zero_grad()
        plain.append(time.perf_counter() - t0)
    runner_ms = statistics.median(counter.times) * 1e3
    plain_ms = statistics.median(plain[1:]) * 1e3
    return dict(
        batch=batch_size,
        crop=crop,
        iters=iters,
        log_interval=log_interval,
        syncs_per_iter=per_iter,
        syncs_between_logs_max=max(between) if between else 0,
        syncs_at_log_max=max(at_log) if at_log else 0,
        runner_iter_ms=round(runner_ms, 2),
        plain_iter_ms=round(plain_ms, 2),
        runner_overhead_ms=round(runner_ms - plain_ms, 2))


def table(result: dict) -> str:
    lines = [
        f'Preprocessor of `{result["config"]}` on `meta` ({result["label"]})'
        '', '', '| images x views | part | device ops | blocking H2D copies | '
        'traffic (GB) |', '|---|---|---:|---:|---:|'
    ]
    for row in result['preprocessor']:
        shape = f'{row["images"]} x {len(row["views"])}'
        for part in row['ops']:
            lines.append(f'| {shape} | {part} | {row["ops"][part]} | '
                         f'{row["blocking"][part]} | '
                         f'{row["gbytes"][part]} |')
        lines.append(f'| {shape} | **crop + photometric + filter + '
                     f'normalisation** | '
                     f'**{row["crop_photometric_filter_norm_ops"]}** | | |')
        lines.append(f'| {shape} | **whole preprocessor** | '
                     f'**{row["total_ops"]}** | **{row["total_blocking"]}** '
                     f'| **{row["total_gbytes"]}** |')
    lines += [
        '', f'Host time of the preprocessor, compute removed '
        f'({result["preprocessor"][0]["images"]} images x 2 views on '
        f'`meta`, best of 5): **{result["host_ms"]} ms**'
    ]
    if 'cuda' in result:
        c = result['cuda']
        lines.append(f'\nOn CUDA: {c["cuda_ms"]} ms per preprocessor call, '
                     f'{c["cuda_syncs"]} synchronisations')
    r = result.get('runner')
    if r:
        lines += [
            '', f'Through the Runner (demo config, batch {r["batch"]}, '
            f'{r["crop"]} px, {r["iters"]} iterations, log every '
            f'{r["log_interval"]}, CPU):', '', '| quantity | value |',
            '|---|---:|',
            f'| sync-inducing calls per iteration between log intervals '
            f'(max) | {r["syncs_between_logs_max"]} |',
            f'| sync-inducing calls at a log interval (max) | '
            f'{r["syncs_at_log_max"]} |',
            f'| Runner iteration (median, ms) | {r["runner_iter_ms"]} |',
            f'| plain PyTorch loop iteration (median, ms) | '
            f'{r["plain_iter_ms"]} |',
            f'| Runner host time outside the model (ms) | '
            f'{r["runner_overhead_ms"]} |'
        ]
    return '\n'.join(lines)


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--config', default=VIT_B)
    parser.add_argument('--demo-config', default=DEMO)
    parser.add_argument('--images', type=int, default=128)
    parser.add_argument(
        '--no-double',
        action='store_true',
        help='skip the count at twice --images')
    parser.add_argument('--runner-batch', type=int, default=4)
    parser.add_argument('--iters', type=int, default=16)
    parser.add_argument('--log-interval', type=int, default=4)
    parser.add_argument('--no-runner', action='store_true')
    parser.add_argument('--device', default='cpu', choices=['cpu', 'cuda'])
    parser.add_argument('--label', default='this checkout')
    parser.add_argument('--work-dir', default=None)
    parser.add_argument('--out', default=None)
    args = parser.parse_args(argv)
    torch.manual_seed(0)
    cfg = load_config(args.config)
    sizes = [args.images] + ([] if args.no_double else [2 * args.images])
    result = dict(
        config=args.config,
        label=args.label,
        torch=torch.__version__,
        machine=platform.processor() or platform.machine(),
        source_sizes=[list(s) for s in SIZES],
        preprocessor=[count_preprocessor(cfg, n) for n in sizes],
        host_ms=host_ms(cfg, args.images))
    if args.device == 'cuda':
        result['cuda'] = cuda_rows(cfg, args.images)
    if not args.no_runner:
        import tempfile
        with tempfile.TemporaryDirectory() as tmp:
            result['runner'] = runner_rows(
                args.runner_batch,
                args.iters,
                args.log_interval,
                args.work_dir or tmp,
                demo=args.demo_config)
    write_report(args.out, result, table(result))
    return result


if __name__ == '__main__':
    main()
