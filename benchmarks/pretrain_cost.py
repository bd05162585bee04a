"""Estimated FLOPs and peak memory of a pre-training step, without a GPU.

Runs the exact steps of ``pretrain_throughput.py`` (FOLK and MFM through
``model.train_step`` with the frequency filter and the optimizer step; the
plain supervised ViT step) on *fake* tensors (``FakeTensorMode``): shapes,
dtypes and autograd are real, no memory is allocated and nothing is
computed, so ViT-B/16 at 128 images of 224 px takes under a minute on
two CPU cores.

- FLOPs: ``torch.utils.flop_counter.FlopCounterMode`` (matrix products,
  attention and convolutions, forward and backward). Their ratio to the
  supervised step is the throughput ratio a compute-bound device would
  reach.
- Peak memory: ``torch.distributed._tools.mem_tracker.MemTracker`` over the
  second step (the first creates the optimizer state), split by category
  at the moment of the peak (parameters, gradients, optimizer state,
  activations, the rest: inputs and buffers).

The frequency filter's decisions need pixel values, so the data
preprocessor runs once on a real batch beforehand and its output is
replayed; its transient FFT buffers (freed before the forward) are not
counted. Gradient clipping is left out (it reads the norm on the host).

What this is not: a device measurement. CPU autocast (bf16) stands in for
CUDA autocast, and attention runs the CPU flash kernel, which like the CUDA
flash / memory-efficient kernels keeps only the output and the log-sum-exp
for backward. Not modelled: the CUDA context, cuBLAS workspaces and the
caching allocator's rounding and fragmentation, so ``max_memory_allocated``
on a GPU is expected to be somewhat higher. ``pretrain_throughput.py``
measures the real thing where a GPU is available.

Examples::

    # the headline setting: ViT-B/16, 224 px, 128 images, bf16
    python benchmarks/pretrain_cost.py --out \\
        benchmarks/results/pretrain_cost_vit-b_bf16.json
"""
import argparse
import contextlib
import copy
from typing import Dict, Optional

import pretrain_throughput as throughput  # noqa: E402
import torch
from benchmark_report import write_report  # noqa: E402
from mmengine.logging import MessageHub  # noqa: E402
from mmpretrain.registry import MODELS  # noqa: E402
from torch._subclasses.fake_tensor import FakeCopyMode, FakeTensorMode
from torch.distributed._tools.mem_tracker import MemTracker
from torch.utils.flop_counter import (FlopCounterMode,
                                      sdpa_backward_flop_count,
                                      sdpa_flop_count)

GIB = 2**30
CATEGORIES = ('Parameter', 'Gradient', 'Optstate', 'Activation')


def flop_counter() -> FlopCounterMode:
    """torch's FLOP counter, also counting the CPU flash-attention kernels.

    torch 2.14 counts the CUDA attention kernels but not their CPU
    counterparts, which fake CPU tensors dispatch to; they take the same
    arguments, so the same formulas apply.
    """

    def forward(query, key, value, *args, out_shape=None, **kwargs):
        return sdpa_flop_count(query, key, value)

    def backward(grad_out, query, key, value, *args, out_shape=None, **kwargs):
        return sdpa_backward_flop_count(grad_out, query, key, value)

    aten = torch.ops.aten
    return FlopCounterMode(
        display=False,
        custom_mapping={
            aten._scaled_dot_product_flash_attention_for_cpu: forward,
            aten._scaled_dot_product_flash_attention_for_cpu_backward:
            backward,
        })


class Replay(torch.nn.Module):
    """A data preprocessor that returns a batch filtered beforehand.

    Args:
        batch (dict): Output of ``FrequencyFilterPreprocessor`` (real
            tensors).
        mode (FakeTensorMode, optional): The fake mode to convert them
            into; None keeps them real.
    """

    def __init__(self, batch: dict, mode: Optional[FakeTensorMode]) -> None:
        super().__init__()
        inputs = {
            key: [mode.from_tensor(t) if mode else t for t in value]
            for key, value in batch['inputs'].items()
        }
        self.batch = dict(inputs=inputs, data_samples=batch['data_samples'])

    def tensors(self) -> list:
        """Every tensor of the batch (views, filtered views, masks)."""
        return [t for value in self.batch['inputs'].values() for t in value]

    def forward(self, data: dict, training: bool = False) -> dict:
        """Ignore ``data``; return the replayed batch."""
        return self.batch


def filtered_batch(method: str, args: argparse.Namespace) -> dict:
    """Run the frequency-filter preprocessor on a real batch."""
    cfg = throughput.model_cfg(method, args.arch, args.img_size, args.patch,
                               args.out_dim)['data_preprocessor']
    preprocessor = MODELS.build(
        dict(type='FrequencyFilterPreprocessor', **cfg))
    views = 2 if method == 'folk' else 1
    data = throughput.make_batch(args.batch, args.img_size, views, 'cpu')
    return preprocessor(data, True)


def estimate(method: str,
             args: argparse.Namespace,
             fake: bool = True) -> Dict[str, float]:
    """FLOPs and peak memory (bytes, by category) of one training step.

    Args:
        method (str): ``supervised``, ``mfm`` or ``folk``.
        args (argparse.Namespace): Size options (see ``main``).
        fake (bool): Run on fake tensors (default). ``False`` runs the same
            accounting on real CPU tensors (slow; used by the tests to check
            that fake and real agree).

    Returns:
        dict: ``gflops`` per step, ``peak_gib`` and ``<category>_gib``.
    """
    MessageHub.get_current_instance().update_info('max_iters', 10**6)
    torch.manual_seed(0)
    args = argparse.Namespace(**{**vars(args), 'compile': False})
    cpu = torch.device('cpu')
    model = throughput.build_model(method, args, init_weights=not fake)
    if hasattr(model, 'teacher'):
        # One real EMA update sets the teacher's host-side step counter,
        # which fake tensors could not read.
        model.teacher.update_parameters(model.student_encoder())
    batch = None
    if method in ('mfm', 'folk'):
        # The filter's decisions are taken on host values, which fake
        # tensors do not have: filter a real batch, then replay it.
        batch = filtered_batch(method, args)
    mode = FakeTensorMode()
    if fake:
        with FakeCopyMode(mode):  # same model, fake tensors
            model = copy.deepcopy(model)
    with contextlib.ExitStack() as stack:
        if fake:
            stack.enter_context(mode)
        stack.enter_context(
            torch.autocast(
                'cpu', dtype=torch.bfloat16, enabled=args.dtype == 'bf16'))
        step, inputs = throughput.make_step(
            method, model, args, cpu, clip=False)
        if batch is not None:
            batch = Replay(batch, mode if fake else None)
            model.data_preprocessor = batch
            inputs = batch.tensors()
        # MemTracker (torch 2.14) hooks the gradient of every parameter of a
        # module it enters and refuses frozen ones: FOLK's teacher (run
        # under no_grad: flagging it builds no graph) and MAE's fixed
        # position embeddings (one small extra gradient each). The
        # optimizer was built before, from the trainable ones.
        model.requires_grad_(True)
        tracker = MemTracker()
        tracker.track_external(model, *inputs)
        with tracker:
            with flop_counter() as flops:
                step()  # creates the optimizer state
            tracker.reset_mod_stats()
            step()
        peak = tracker.get_tracker_snapshot('peak')[cpu]
    by_name = {getattr(k, 'value', k): v for k, v in peak.items()}
    row = dict(
        method=method,
        gflops=flops.get_total_flops() / 1e9,
        peak_gib=by_name['Total'] / GIB)
    for name in CATEGORIES:
        row[f'{name.lower()}_gib'] = by_name.get(name, 0) / GIB
    return row


def table(rows, header: str) -> str:
    """Markdown table of :func:`estimate` rows with ratios to supervised."""
    base = next((r for r in rows if r['method'] == 'supervised'), None)
    lines = [
        header, '', '| method | TFLOPs / step | compute-bound ratio vs '
        'supervised | peak memory (GiB) | activations | parameters | '
        'gradients | optimizer state | other |',
        '|---|---|---|---|---|---|---|---|---|'
    ]
    for r in rows:
        r['ratio_vs_supervised'] = (
            base['gflops'] / r['gflops'] if base else float('nan'))
        other = r['peak_gib'] - sum(r[f'{c.lower()}_gib'] for c in CATEGORIES)
        lines.append(f"| {r['method']} | {r['gflops'] / 1e3:.2f} | "
                     f"{r['ratio_vs_supervised']:.3f} | {r['peak_gib']:.2f} | "
                     f"{r['activation_gib']:.2f} | {r['parameter_gib']:.2f} | "
                     f"{r['gradient_gib']:.2f} | {r['optstate_gib']:.2f} | "
                     f'{other:.2f} |')
    return '\n'.join(lines)


def main():
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--arch', choices=sorted(throughput.ARCHS), default='b')
    p.add_argument('--img-size', type=int, default=224)
    p.add_argument('--patch', type=int, default=16)
    p.add_argument('--batch', type=int, default=128)
    p.add_argument('--out-dim', type=int, default=65536)
    p.add_argument('--dtype', choices=['bf16', 'fp32'], default='bf16')
    p.add_argument(
        '--methods',
        default='supervised,mfm,folk',
        help='comma-separated from supervised, mfm, folk and mae '
        "(MMPretrain's own MAE ViT-B/16, for reference)")
    p.add_argument('--out', default=None, help='JSON output path')
    args = p.parse_args()
    rows = [estimate(m, args) for m in args.methods.split(',')]
    header = (f'estimated on fake tensors (no device): arch {args.arch}, '
              f'{args.img_size} px, patch {args.patch}, batch {args.batch}, '
              f'{args.dtype} autocast, projector out_dim {args.out_dim}')
    text = table(rows, header)
    write_report(args.out, dict(config=vars(args), rows=rows), text)


if __name__ == '__main__':
    main()
