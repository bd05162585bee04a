"""DINOProjector: shapes, float32 prototypes, frozen prototypes early on."""
import pytest
import torch
from _tiny import TINY_FOLK, build, make_batch, set_schedule
from mmengine.optim import OptimWrapper
from mmpretrain.registry import MODELS


def _projector(**kwargs):
    torch.manual_seed(0)
    proj = MODELS.build(
        dict(
            type='DINOProjector',
            in_channels=8,
            hidden_channels=16,
            bottleneck_channels=4,
            out_channels=12,
            **kwargs))
    proj.init_weights()
    return proj.train()


def _grads(proj, x):
    proj.zero_grad(set_to_none=True)
    out = proj(x)
    out.square().sum().backward()
    return out, proj.last_layer.parametrizations.weight.original1.grad, \
        proj.mlp[0].weight.grad


def test_prototypes_get_zero_gradient_while_frozen():
    x = torch.randn(5, 8)
    proj = _projector(freeze_last_layer_iters=3)
    free = _projector()
    set_schedule(10, 2)
    out, proto_grad, mlp_grad = _grads(proj, x)
    # same logits as without freezing; prototypes in the graph, zero grad
    torch.testing.assert_close(out, free(x))
    assert out.shape == (5, 12) and out.dtype == torch.float32
    assert proto_grad is not None and torch.count_nonzero(proto_grad) == 0
    assert mlp_grad.abs().sum() > 0
    set_schedule(10, 3)
    _, proto_grad, _ = _grads(proj, x)
    assert proto_grad.abs().sum() > 0


def test_freeze_in_epochs_and_outside_a_runner():
    proj = _projector(freeze_last_layer=1)
    set_schedule(100, 9, max_epochs=10)  # 10 iterations / epoch
    assert proj.prototypes_frozen()
    set_schedule(100, 10, max_epochs=10)
    assert not proj.prototypes_frozen()
    set_schedule(100, 0, max_epochs=None)  # iteration loop
    assert proj.prototypes_frozen()
    set_schedule(max_iters=None)  # no runner: nothing frozen
    assert not proj.prototypes_frozen()
    assert not _projector().prototypes_frozen()


def test_adamw_leaves_frozen_prototypes_unchanged():
    set_schedule(10, 0)
    proj = _projector(freeze_last_layer_iters=5)
    optim = torch.optim.AdamW(proj.parameters(), lr=0.1, weight_decay=0.5)
    before = proj.last_layer.weight.detach().clone()
    mlp_before = proj.mlp[0].weight.detach().clone()
    for _ in range(3):
        optim.zero_grad()
        proj(torch.randn(6, 8)).square().sum().backward()
        optim.step()
    # decay rescales only the direction v, which the weight norm removes
    torch.testing.assert_close(proj.last_layer.weight, before)
    assert not torch.allclose(proj.mlp[0].weight, mlp_before)
    set_schedule(10, 5)
    optim.zero_grad()
    proj(torch.randn(6, 8)).square().sum().backward()
    optim.step()
    assert not torch.allclose(proj.last_layer.weight, before)


def test_folk_train_step_keeps_prototypes_while_frozen():
    cfg = dict(TINY_FOLK)
    cfg['projector'] = dict(TINY_FOLK['projector'], freeze_last_layer_iters=2)
    set_schedule(10, 0)
    model = build(cfg)
    before = model.projector.last_layer.weight.detach().clone()
    optim = OptimWrapper(torch.optim.AdamW(model.parameters(), lr=0.01))
    model.train_step(make_batch(), optim)
    torch.testing.assert_close(model.projector.last_layer.weight, before)
    set_schedule(10, 2)
    model.train_step(make_batch(seed=1), optim)
    assert not torch.allclose(model.projector.last_layer.weight, before)


@pytest.mark.parametrize('key',
                         ['freeze_last_layer', 'freeze_last_layer_iters'])
def test_negative_freeze_is_refused(key):
    with pytest.raises(ValueError, match=key):
        _projector(**{key: -1})
