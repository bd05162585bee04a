"""Helpers of ``benchmarks/gpu_checks.sh``: the CUDA checks and the report.

Subcommands:

- ``env --out JSON``: versions of Python / torch / the OpenMMLab packages,
  the GPU (``nvidia-smi``) if any.
- ``checks --device DEVICE --size S --out JSON``: short correctness checks
  of the GPU path, each reported with its numbers and ``ok``:

  * ``filter_cpu_vs_device``: :func:`folk.frequency.filter_images` on the
    device equals the CPU result (keep masks and filtered images);
  * ``filter_sync_free`` / ``preprocessor_sync_free`` (CUDA only): no
    host-device synchronisation in the filter and in
    ``FrequencyFilterPreprocessor`` on a pinned batch, counted with
    ``torch.cuda.set_sync_debug_mode('warn')``;
  * ``configured_preprocessor_autocast`` / ``configured_preprocessor_syncs``
    (the latter CUDA only): the ViT-B config's pipeline, collate and
    preprocessor (device crops, photometric, ``to_rgb``) on random images
    of ImageNet-like sizes give the same output under bf16 autocast as
    without (the preprocessor runs inside the AMP context in training), and
    the syncs of that path, counted as above;
  * ``projector_float32``: the prototype layer's logits are float32 under
    bf16 autocast;
  * ``teacher_deterministic``: two teacher forwards of one batch are equal
    with a student ``drop_path_rate`` of 0.1;
  * ``bf16_folk_steps``: three FOLK training steps (bf16 ``AmpOptimWrapper``
    on CUDA, ``OptimWrapper`` on a CPU dry run) give finite losses.

  Exits with status 1 when a check fails (the JSON is written first).
- ``record``: add one step's outcome (and the JSON it wrote) to the
  command's report JSON, rewritten atomically after every step.

Only ``record`` is light (no torch import): the shell script calls it after
every step.
"""
import argparse
import datetime
import json
import os
import os.path as osp
import subprocess
import sys
import time
import warnings

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))


def _write_json(path: str, data: dict) -> None:
    """Write ``data`` to ``path`` atomically (temporary file + rename)."""
    os.makedirs(osp.dirname(osp.abspath(path)), exist_ok=True)
    tmp = f'{path}.{os.getpid()}.tmp'
    with open(tmp, 'w') as f:
        json.dump(data, f, indent=2)
        f.write('\n')
    os.replace(tmp, path)


def _rel(path: str) -> str:
    """``path`` relative to the repository when it lies inside it."""
    rel = osp.relpath(osp.abspath(path), REPO)
    return path if rel.startswith('..') else rel


# ---------------------------------------------------------------------------
# record
# ---------------------------------------------------------------------------
def record(args: argparse.Namespace) -> None:
    """Start the report (``--start``) or append one step to it."""
    now = datetime.datetime.now().isoformat(timespec='seconds')
    if args.start:
        _write_json(
            args.json,
            dict(
                command=args.command,
                dry_run=bool(args.dry_run),
                started=now,
                finished=None,
                steps=[],
                failed=[]))
        return
    with open(args.json) as f:
        report = json.load(f)
    if args.finish:
        report['finished'] = now
        _write_json(args.json, report)
        return
    status = args.status or ('ok' if args.rc == 0 else
                             'timeout' if args.rc in (124, 137) else 'failed')
    step = dict(
        index=args.index,
        name=args.step,
        status=status,
        rc=args.rc,
        seconds=args.seconds,
        command=args.cmd,
        note=args.note)
    if args.result and osp.isfile(args.result):
        try:
            with open(args.result) as f:
                step['result'] = json.load(f)
        except ValueError as err:
            step['result_error'] = f'{_rel(args.result)}: {err}'
    if args.result_path:
        step['result_path'] = _rel(args.result_path)
    report['steps'].append(step)
    if status not in ('ok', 'not needed'):
        report['failed'].append(args.step)
    _write_json(args.json, report)


# ---------------------------------------------------------------------------
# env
# ---------------------------------------------------------------------------
def env(args: argparse.Namespace) -> None:
    import importlib.metadata
    import importlib.util
    import platform

    import torch
    info = dict(
        python=platform.python_version(),
        torch=torch.__version__,
        cuda_available=torch.cuda.is_available(),
        cuda=torch.version.cuda,
        cpu_count=os.cpu_count())
    # versions without importing (mmseg's import alone takes ~10 s)
    for name in ('mmengine', 'mmcv', 'mmcv-lite', 'mmpretrain',
                 'mmsegmentation'):
        try:
            info[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            info[name] = None
    # mmcv-lite may be a copied package without metadata (gpu_bundle.sh)
    for module in ('mmcv', 'mmengine', 'mmpretrain', 'mmseg', 'folk'):
        if importlib.util.find_spec(module) is None:
            info[f'{module}_importable'] = 'import failed: not found'
    if torch.cuda.is_available():
        info['gpu'] = torch.cuda.get_device_name(0)
        info['gpu_memory_gib'] = (
            torch.cuda.get_device_properties(0).total_memory / 2**30)
        try:
            info['nvidia_smi'] = subprocess.run([
                'nvidia-smi', '--query-gpu=name,memory.total,driver_version',
                '--format=csv,noheader'
            ],
                                                capture_output=True,
                                                text=True,
                                                timeout=20).stdout.strip()
        except (OSError, subprocess.SubprocessError) as err:
            info['nvidia_smi'] = f'not run: {err!r}'
    print(json.dumps(info, indent=2))
    _write_json(args.out, info)
    failed = [
        k for k, v in info.items()
        if isinstance(v, str) and v.startswith('import failed')
    ]
    if failed:
        sys.exit(f'env: cannot import {failed}')


# ---------------------------------------------------------------------------
# checks
# ---------------------------------------------------------------------------
def _count_syncs(device, fn) -> dict:
    """Run ``fn`` with CUDA's sync debug mode on; count the syncs."""
    import torch
    torch.cuda.synchronize(device)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter('always')
        torch.cuda.set_sync_debug_mode('warn')
        try:
            fn()
        finally:
            torch.cuda.set_sync_debug_mode('default')
    syncs = [
        str(w.message).splitlines()[0] for w in caught
        if 'synchroniz' in str(w.message).lower()
    ]
    return dict(syncs=len(syncs), first=syncs[:3], ok=not syncs)


#: (height, width) of ImageNet-like images (the most common JPEG sizes)
IMAGE_SIZES = ((375, 500), (333, 500), (500, 375), (500, 500), (480, 640))


def _configured_batch(size: int, device, batch: int = 8):
    """The ViT-B config's preprocessor (on ``device``) and one batch made
    by its own pipeline (after the image loading) and ``collate_fn``, from
    random uint8 images; crops of ``size`` px, images scaled by size / 224
    (full size at 224)."""
    import numpy as np
    import torch
    from mmengine.config import Config
    from mmengine.dataset import Compose
    from mmengine.registry import FUNCTIONS, DefaultScope
    from mmpretrain.registry import MODELS
    cfg = Config.fromfile(osp.join(REPO, 'configs', 'folk_vit-b.py'))
    loader = cfg.train_dataloader
    steps = loader.dataset.pipeline[1:]  # the images are given, not read
    steps[0]['crop_size'] = size
    rng = np.random.default_rng(0)
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        pipeline = Compose(steps)
        collate = FUNCTIONS.get(loader.collate_fn['type'])
        pre = MODELS.build(cfg.data_preprocessor).to(device)
    samples = []
    for i in range(batch):
        h, w = (
            max(size, v * size // 224)
            for v in IMAGE_SIZES[i % len(IMAGE_SIZES)])
        img = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
        samples.append(
            pipeline(
                dict(
                    img=img,
                    img_shape=(h, w),
                    ori_shape=(h, w),
                    img_path=f'random_{i}.jpg',
                    sample_idx=i)))
    torch.manual_seed(0)
    return pre, collate(samples)


def _pin(batch: dict, cuda: bool) -> dict:
    """A fresh copy of ``batch``, its tensors pinned on CUDA hosts."""
    import copy
    batch = copy.deepcopy(batch)
    if cuda:
        batch['inputs'] = [x.pin_memory() for x in batch['inputs']]
    return batch


def checks(args: argparse.Namespace) -> None:
    import torch
    import torch.nn.functional as F
    # _tiny: tests/test_models, on PYTHONPATH (gpu_checks.sh, setup.cfg)
    from _tiny import TINY_VIT, build, make_batch, set_schedule
    from mmengine.optim import AmpOptimWrapper, OptimWrapper

    import folk  # noqa: F401
    from folk.frequency import filter_images, mfm_radius
    device = torch.device(args.device)
    cuda = device.type == 'cuda'
    out = {}

    def report(name, **values):
        out[name] = values
        print(f'{name}: {values}', flush=True)

    # filters on the device equal the CPU's
    torch.manual_seed(0)
    s = args.size
    x = torch.rand(16, 3, s, s)
    kind = torch.tensor([0, 1, 2, 3] * 4)
    param = torch.tensor([0.01, 0.05, mfm_radius(s), mfm_radius(s)] * 4)
    fc, kc = filter_images(x, kind, param)
    fd, kd = filter_images(x.to(device), kind, param)
    mismatch = (kc != kd.cpu()).float().mean().item()
    diff = (fc - fd.cpu()).abs().max().item()
    report(
        'filter_cpu_vs_device',
        keep_mismatch_fraction=mismatch,
        max_abs_diff=diff,
        ok=mismatch <= 1e-3 and diff <= 0.05)

    # no host-device sync in the filter and in the preprocessor
    set_schedule()
    model = build().to(device)
    batch = make_batch(batch=8, size=32)
    if cuda:
        xd = x.to(device)
        report('filter_sync_free',
               **_count_syncs(device, lambda: filter_images(xd, kind, param)))
        model.data_preprocessor._non_blocking = True  # as the configs
        pinned = dict(
            inputs=[v.pin_memory() for v in batch['inputs']],
            data_samples=batch['data_samples'])
        report(
            'preprocessor_sync_free',
            **_count_syncs(device,
                           lambda: model.data_preprocessor(pinned, True)))
    else:
        report('filter_sync_free', skipped='no CUDA device', ok=True)
        report('preprocessor_sync_free', skipped='no CUDA device', ok=True)

    # the configured path: the ViT-B config's pipeline, collate and
    # preprocessor (device crops, photometric, to_rgb) on random images of
    # ImageNet-like sizes; the same views inside the AMP context as outside
    # (the preprocessor runs inside it during training) and, on CUDA, the
    # syncs of that path
    pre, configured = _configured_batch(s, device)
    plain = pre(_pin(configured, cuda), True)['inputs']
    with torch.autocast(device.type, dtype=torch.bfloat16):
        amp = pre(_pin(configured, cuda), True)['inputs']
    differ = [
        f'{key}[{i}]' for key in plain
        for i, (a, b) in enumerate(zip(plain[key], amp[key]))
        if not torch.equal(a, b)
    ]
    report(
        'configured_preprocessor_autocast',
        # folk_views_collate: one uint8 tensor of rows; the per-sample
        # arrays are view-major (views, images, ...)
        images=int(configured['data_samples']['crop'].shape[1]),
        differ=differ,
        ok=not differ)
    if cuda:
        report(
            'configured_preprocessor_syncs',
            **_count_syncs(device, lambda: pre(_pin(configured, cuda), True)))
    else:
        report(
            'configured_preprocessor_syncs', skipped='no CUDA device', ok=True)

    # the prototype layer in float32 under bf16 autocast
    feats = torch.randn(8, 32, device=device)
    with torch.autocast(device.type, dtype=torch.bfloat16):
        logits = model.projector(feats)
        hidden = model.projector.mlp(feats)
    ref = (
        F.normalize(hidden.float(), dim=-1)
        @ model.projector.last_layer.weight.detach().t())
    report(
        'projector_float32',
        dtype=str(logits.dtype),
        max_abs_diff_vs_float32=(logits.float() - ref).abs().max().item(),
        ok=logits.dtype == torch.float32)

    # a deterministic teacher with a drop-path student
    dp = build(backbone=dict(TINY_VIT, drop_path_rate=0.1, drop_rate=0.1)).to(
        device).train()
    images = torch.randn(4, 3, 32, 32, device=device)
    with torch.no_grad():
        t1, t2 = dp.teacher(images), dp.teacher(images)
        s1, s2 = dp.student_encoder()(images), dp.student_encoder()(images)
    report(
        'teacher_deterministic',
        teacher_equal=bool(torch.equal(t1, t2)),
        student_differs=not bool(torch.equal(s1, s2)),
        ok=bool(torch.equal(t1, t2)))

    # bf16 FOLK steps give finite losses
    params = [p for p in model.parameters() if p.requires_grad]
    optim = torch.optim.AdamW(params, lr=1e-4)
    wrapper = (
        AmpOptimWrapper(
            optimizer=optim, dtype='bfloat16', loss_scale=dict(
                enabled=False)) if cuda else OptimWrapper(optimizer=optim))
    losses = []
    for i in range(3):
        log = model.train_step(make_batch(batch=8, size=32, seed=i), wrapper)
        losses.append({k: float(v) for k, v in log.items()})
    finite = all(v == v and abs(v) != float('inf') for row in losses
                 for v in row.values())
    report(
        'bf16_folk_steps' if cuda else 'fp32_folk_steps_cpu',
        losses=losses,
        ok=finite)

    result = dict(
        device=str(device),
        size=s,
        checks=out,
        ok=all(v.get('ok', False) for v in out.values()))
    _write_json(args.out, result)
    if not result['ok']:
        bad = [k for k, v in out.items() if not v.get('ok', False)]
        sys.exit(f'checks failed: {bad}')


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    sub = parser.add_subparsers(dest='action', required=True)
    p = sub.add_parser('env')
    p.add_argument('--out', required=True)
    p = sub.add_parser('checks')
    p.add_argument('--device', default='cuda')
    p.add_argument('--size', type=int, default=224)
    p.add_argument('--out', required=True)
    p = sub.add_parser('record')
    p.add_argument('--json', required=True)
    p.add_argument('--start', action='store_true')
    p.add_argument('--finish', action='store_true')
    p.add_argument('--command', default=None)
    p.add_argument('--dry-run', type=int, default=0)
    p.add_argument('--index', type=int, default=None)
    p.add_argument('--step', default=None)
    p.add_argument('--rc', type=int, default=None)
    p.add_argument(
        '--status', default=None, help='override the status derived from --rc')
    p.add_argument('--seconds', type=float, default=None)
    p.add_argument('--cmd', default=None, help='the command line run')
    p.add_argument('--note', default=None)
    p.add_argument(
        '--result',
        default=None,
        help="the step's own JSON, embedded in the report")
    p.add_argument(
        '--result-path',
        default=None,
        help='a result file of the step, named in the report')
    args = parser.parse_args(argv)
    t = time.perf_counter()
    dict(env=env, checks=checks, record=record)[args.action](args)
    if args.action != 'record':
        print(f'{args.action} done in {time.perf_counter() - t:.1f}s')


if __name__ == '__main__':
    main()
