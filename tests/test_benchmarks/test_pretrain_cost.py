"""The cost estimator: fake tensors account like real ones; sane ratios.

``benchmarks/pretrain_cost.py`` estimates FLOPs and peak memory of a
training step on fake tensors. Here a tiny ViT runs the same accounting on
real CPU tensors and the two must agree.
"""
import argparse
import importlib.util
import os.path as osp

import pytest

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


def _load(name):
    path = osp.join(REPO, 'benchmarks', f'{name}.py')
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope='module')
def cost():
    return _load('pretrain_cost')


def tiny_args(**kwargs):
    args = dict(
        arch='tiny',
        img_size=32,
        patch=8,
        batch=4,
        out_dim=256,
        dtype='fp32',
        compile=False)
    args.update(kwargs)
    return argparse.Namespace(**args)


@pytest.mark.parametrize('method', ['supervised', 'mfm', 'folk'])
def test_fake_tensors_account_like_real_ones(cost, method):
    args = tiny_args(img_size=64, batch=32)  # the peak is in the forward
    fake = cost.estimate(method, args, fake=True)
    real = cost.estimate(method, args, fake=False)
    assert fake['gflops'] == pytest.approx(real['gflops'], rel=1e-9)
    assert fake['gflops'] > 0
    assert fake['activation_gib'] > fake['optstate_gib']
    for key in ('peak_gib', 'parameter_gib', 'optstate_gib', 'activation_gib'):
        assert fake[key] == pytest.approx(real[key], rel=1e-6), key


def test_flop_counter_counts_a_vit_forward_exactly(cost):
    """Linear layers, attention (CPU flash kernel), patch embedding and the
    classifier of a tiny ViT, against the formula."""
    import torch
    throughput = _load('pretrain_throughput')
    model = throughput.Supervised('tiny', 32, 8).eval()
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad(), cost.flop_counter() as counter:
        model(x)
    b, d, layers, hidden = 2, 192, 4, 768
    t = (32 // 8)**2 + 1  # patches + [CLS]
    per_layer = (
        2 * t * d * 3 * d + 2 * t * d * d  # qkv, proj
        + 2 * (2 * t * t * d)  # q @ k^T, attn @ v (all heads)
        + 2 * t * d * hidden * 2)  # fc1, fc2
    patch_embed = 2 * (t - 1) * (3 * 8 * 8) * d
    head = 2 * d * 1000
    assert counter.get_total_flops() == b * (
        layers * per_layer + patch_embed + head)


def test_mmpretrain_mae_reference_is_estimated(cost):
    """MMPretrain's own MAE ViT-B/16 (a reference row) runs through the
    same estimate; it encodes a quarter of the tokens, so it costs less
    than the supervised full-token step."""
    args = tiny_args(arch='b', img_size=224, patch=16, batch=2)
    mae = cost.estimate('mae', args)
    sup = cost.estimate('supervised', args)
    assert 0.4 < mae['gflops'] / sup['gflops'] < 0.7
    assert mae['optstate_gib'] > 0 and mae['activation_gib'] > 0
    with pytest.raises(ValueError, match='ViT-B/16 at 224 px'):
        cost.estimate('mae', tiny_args())


def test_folk_costs_two_student_and_two_teacher_passes(cost):
    args = tiny_args(out_dim=64)
    sup = cost.estimate('supervised', args)
    mfm = cost.estimate('mfm', args)
    folk = cost.estimate('folk', args)
    # FOLK: student forward + backward on 2 views and teacher forward on 2
    # views = 8 backbone forwards per image vs 3 for supervised (0.375).
    assert 0.3 < sup['gflops'] / folk['gflops'] < 0.4
    assert 0.9 < sup['gflops'] / mfm['gflops'] < 1.1
    assert folk['peak_gib'] > mfm['peak_gib'] > 0
    # The teacher doubles the parameters held; it has no optimizer state.
    assert folk['parameter_gib'] > 1.9 * mfm['parameter_gib']


def test_activations_scale_with_batch(cost):
    # Large enough that the peak is in the forward, not the optimizer step.
    small = cost.estimate('folk', tiny_args(img_size=64, batch=32))
    large = cost.estimate('folk', tiny_args(img_size=64, batch=64))
    assert large['gflops'] == pytest.approx(2 * small['gflops'], rel=0.05)
    assert large['activation_gib'] == pytest.approx(
        2 * small['activation_gib'], rel=0.1)
    assert large['parameter_gib'] == pytest.approx(small['parameter_gib'])


def test_bf16_halves_matmul_activations(cost):
    fp32 = cost.estimate('supervised', tiny_args(img_size=64, batch=32))
    bf16 = cost.estimate('supervised',
                         tiny_args(img_size=64, batch=32, dtype='bf16'))
    assert bf16['activation_gib'] < 0.8 * fp32['activation_gib']
    assert bf16['gflops'] == pytest.approx(fp32['gflops'])


def test_table_has_ratios(cost):
    rows = [
        dict(
            method='supervised',
            gflops=10.,
            peak_gib=2.,
            parameter_gib=.5,
            gradient_gib=0.,
            optstate_gib=1.,
            activation_gib=.25),
        dict(
            method='folk',
            gflops=40.,
            peak_gib=4.,
            parameter_gib=1.,
            gradient_gib=0.,
            optstate_gib=1.,
            activation_gib=1.)
    ]
    text = cost.table(rows, 'header')
    row = '| folk | 0.04 | 0.250 | 4.00 | 1.00 | 1.00 | 0.00 | 1.00 | 1.00 |'
    assert row in text
    assert rows[1]['ratio_vs_supervised'] == 0.25
