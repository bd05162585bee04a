"""FOLK and MFM under autocast: float32 losses close to the float32 step.

CPU autocast stands in for CUDA autocast here (the same op lists matter:
matrix products in low precision). FFTs and both losses must run in
float32, so the losses stay finite, keep their dtype and stay close to the
float32 values; fp16 with a dynamic loss scale must step the model.
"""
import pytest
import torch
from _tiny import TINY_FOLK, build, make_batch, set_schedule


def _losses(model, dtype):
    data = model.data_preprocessor(make_batch(batch=8), True)
    with torch.autocast('cpu', dtype=dtype, enabled=dtype != torch.float32):
        return model(**data, mode='loss')


@pytest.mark.parametrize('algo', ['FOLK', 'MFM'])
@pytest.mark.parametrize('dtype', [torch.bfloat16, torch.float16])
def test_losses_are_float32_and_close_to_full_precision(algo, dtype):
    set_schedule()
    cfg = dict(TINY_FOLK)
    if algo == 'MFM':
        cfg = {
            k: v
            for k, v in cfg.items() if k not in ('projector', 'distill_head')
        }
        cfg['type'] = 'MFM'
    ref = _losses(build(cfg), torch.float32)
    low = _losses(build(cfg), dtype)
    assert set(low) == set(ref)
    for name, value in low.items():
        assert value.dtype == torch.float32, name
        assert torch.isfinite(value), name
        # bf16 keeps 8 mantissa bits: a loose but meaningful tolerance
        assert value.item() == pytest.approx(ref[name].item(), rel=0.03), \
            name


def test_fp16_dynamic_loss_scale_steps_the_student():
    """fp16 with torch's dynamic GradScaler (what AmpOptimWrapper uses with
    loss_scale='dynamic', initial scale 2**16): steps whose scaled
    gradients overflow are skipped and the scale halves, then the scale
    settles and the student trains with finite weights."""
    set_schedule()
    model = build()
    optim = torch.optim.AdamW(model.parameters(), lr=1e-3)
    scaler = torch.amp.GradScaler('cpu', init_scale=2.**16)
    before = model.backbone.patch_embed.projection.weight.detach().clone()
    scales = []
    for _ in range(12):
        losses = _losses(model, torch.float16)
        for value in losses.values():
            assert torch.isfinite(value)
        optim.zero_grad()
        scaler.scale(sum(losses.values())).backward()
        scaler.step(optim)
        scaler.update()
        scales.append(scaler.get_scale())
    # the scale stopped falling: the last steps were taken
    assert scales[-1] == scales[-2] == scales[-3] >= 1.0
    after = model.backbone.patch_embed.projection.weight
    assert not torch.equal(before, after)
    assert all(torch.isfinite(p).all() for p in model.parameters())


def test_projector_prototypes_run_in_float32_under_bf16_autocast():
    """The 'out_channels'-way prototype layer ignores autocast: its logits
    are float32 and equal to a float32 computation on the (autocast) MLP
    output, while a bf16 prototype layer would differ."""
    import torch.nn.functional as F
    from mmpretrain.registry import MODELS
    torch.manual_seed(0)
    proj = MODELS.build(
        dict(
            type='DINOProjector',
            in_channels=32,
            hidden_channels=48,
            bottleneck_channels=16,
            out_channels=256))
    proj.init_weights()
    x = torch.randn(8, 32)
    hidden = {}
    proj.mlp.register_forward_hook(
        lambda m, args, out: hidden.update(h=out.detach()))
    with torch.autocast('cpu', dtype=torch.bfloat16):
        logits = proj(x)
    assert hidden['h'].dtype == torch.bfloat16  # the MLP follows autocast
    assert logits.dtype == torch.float32
    weight = proj.last_layer.weight.detach()  # (256, 16) float32
    expected = F.normalize(hidden['h'].float(), dim=-1) @ weight.t()
    torch.testing.assert_close(logits, expected, rtol=1e-6, atol=1e-6)
    with torch.autocast('cpu', dtype=torch.bfloat16):
        low = F.linear(F.normalize(hidden['h'], dim=-1), weight)
    assert low.dtype == torch.bfloat16
    assert not torch.allclose(low.float(), expected, rtol=0, atol=1e-4)
