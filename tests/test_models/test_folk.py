"""Behaviour of the FOLK algorithm: teacher, views, pairing, losses."""
import math

import pytest
import torch
from _tiny import TINY_FOLK, TINY_VIT, build, make_batch, set_schedule
from mmengine.optim import OptimWrapper


def _train_step(model, batch, lr=0.1):
    optim = OptimWrapper(torch.optim.SGD(model.parameters(), lr=lr))
    return model.train_step(batch, optim)


def test_loss_terms_are_separate_and_finite():
    set_schedule()
    model = build()
    data = model.data_preprocessor(make_batch(), True)
    losses = model(**data, mode='loss')
    assert set(losses) == {
        'loss_freq', 'loss_distill', 'teacher_entropy',
        'teacher_marginal_entropy'
    }
    for value in losses.values():
        assert value.dim() == 0 and torch.isfinite(value)


def test_teacher_gets_no_gradient_and_student_does():
    set_schedule()
    model = build()
    data = model.data_preprocessor(make_batch(), True)
    losses = model(**data, mode='loss')
    sum(losses.values()).backward()
    for name, p in model.teacher.named_parameters():
        assert not p.requires_grad, name
        assert p.grad is None, name
    assert model.backbone.patch_embed.projection.weight.grad is not None
    assert model.projector.mlp[0].weight.grad is not None


def test_student_sees_filtered_and_teacher_unfiltered_views():
    set_schedule()
    model = build()
    data = model.data_preprocessor(make_batch(), True)
    seen = {}

    def record(name):

        def hook(module, args):
            seen[name] = args[0].detach().clone()

        return hook

    model.backbone.register_forward_pre_hook(record('student'))
    model.teacher.module.backbone.register_forward_pre_hook(record('teacher'))
    model(**data, mode='loss')
    inputs = data['inputs']
    filtered = torch.cat(inputs['filtered'])
    views = torch.cat(inputs['views'])
    assert not torch.allclose(filtered, views)
    torch.testing.assert_close(seen['student'], filtered)
    torch.testing.assert_close(seen['teacher'], views)


def test_teacher_follows_the_cosine_ema_rule():
    max_iters = 10
    set_schedule(max_iters)
    model = build()
    batch = make_batch()
    _train_step(model, batch)  # teacher.steps 0 -> 1 (copy), student moves
    teacher_before = {
        k: v.clone()
        for k, v in model.teacher.module.state_dict().items()
    }
    student = {
        k: v.clone()
        for k, v in model.student_encoder().state_dict().items()
    }
    assert int(model.teacher.steps) == 1
    _train_step(model, batch)  # update with steps == 1
    # DINO convention: momentum = teacher weight, cosine 0.996 -> 1.
    m0, m1 = 0.996, 1.0
    teacher_m = m1 - (m1 - m0) * (math.cos(math.pi * 1 / max_iters) + 1) / 2
    after = model.teacher.module.state_dict()
    moved = 0
    for k, t_before in teacher_before.items():
        if not t_before.is_floating_point():
            continue
        expected = teacher_m * t_before + (1 - teacher_m) * student[k]
        torch.testing.assert_close(after[k], expected, rtol=1e-5, atol=1e-6)
        moved += int(not torch.equal(after[k], t_before))
    assert moved > 0


def test_teacher_starts_as_copy_of_student():
    model = build()
    s = model.student_encoder().state_dict()
    for k, v in model.teacher.module.state_dict().items():
        torch.testing.assert_close(v, s[k])


def test_cross_view_pairing():
    set_schedule()
    model = build()
    head = model.distill_head
    head.eval()  # no centre update
    torch.manual_seed(1)
    s = [torch.randn(4, 64), torch.randn(4, 64)]
    t = [torch.randn(4, 64), torch.randn(4, 64)]
    loss_fn = head.loss_module

    def ce(student, teacher):
        return loss_fn.cross_entropy(student, loss_fn.teacher_probs(teacher))

    expected = (ce(s[0], t[1]) + ce(s[1], t[0])) / 2
    same_view = (ce(s[0], t[0]) + ce(s[1], t[1])) / 2
    got = head.loss(s, t)['loss_distill']
    torch.testing.assert_close(got, expected)
    assert not torch.allclose(got, same_view)
    assert loss_fn.pairs(2) == [(0, 1), (1, 0)]


def test_centre_is_updated_in_training_only():
    set_schedule()
    model = build()
    head = model.distill_head
    t = [torch.randn(4, 64), torch.randn(4, 64)]
    s = [torch.randn(4, 64), torch.randn(4, 64)]
    head.eval()
    head.loss(s, t)
    assert torch.count_nonzero(head.loss_module.center) == 0
    head.train()
    head.loss(s, t)  # first batch: the centre starts at its mean
    mean_1 = torch.cat(t).mean(0, keepdim=True)
    torch.testing.assert_close(head.loss_module.center, mean_1)
    t2 = [torch.randn(4, 64), torch.randn(4, 64)]
    head.loss(s, t2)  # then an EMA with momentum 0.9
    expected = 0.9 * mean_1 + 0.1 * torch.cat(t2).mean(0, keepdim=True)
    torch.testing.assert_close(head.loss_module.center, expected)


def test_first_iteration_uses_a_centred_teacher():
    set_schedule()
    model = build()
    head = model.distill_head
    torch.manual_seed(2)
    s = [torch.randn(4, 64), torch.randn(4, 64)]
    t = [torch.randn(4, 64) + 5, torch.randn(4, 64) + 5]
    got = head.loss(s, t)['loss_distill']
    loss_fn = head.loss_module
    centred = [x - torch.cat(t).mean(0, keepdim=True) for x in t]
    temp = loss_fn.current_teacher_temp()
    probs = [torch.softmax(x / temp, -1) for x in centred]
    expected = (loss_fn.cross_entropy(s[0], probs[1]) +
                loss_fn.cross_entropy(s[1], probs[0])) / 2
    torch.testing.assert_close(got, expected)


def test_teacher_temperature_warmup_follows_iteration():
    model = build()
    loss = model.distill_head.loss_module
    loss.warmup_iters = 10
    set_schedule(100, 0)
    assert loss.current_teacher_temp() == pytest.approx(0.04)
    set_schedule(100, 5)
    assert loss.current_teacher_temp() == pytest.approx(0.055)
    set_schedule(100, 50)
    assert loss.current_teacher_temp() == pytest.approx(0.07)


def test_mfm_has_only_the_frequency_loss():
    set_schedule()
    cfg = {
        k: v
        for k, v in TINY_FOLK.items() if k not in ('projector', 'distill_head')
    }
    cfg['type'] = 'MFM'
    model = build(cfg)
    batch = make_batch(views=1)
    data = model.data_preprocessor(batch, True)
    losses = model(**data, mode='loss')
    assert set(losses) == {'loss_freq'}
    assert not hasattr(model, 'teacher')


def test_resnet_backbone_uses_pooled_features_and_stride_32_decoder():
    set_schedule()
    model = build(
        backbone=dict(type='ResNet', depth=18, out_indices=(3, )),
        neck=dict(
            type='SimMIMLinearDecoder', in_channels=512, encoder_stride=32),
        projector=dict(
            type='DINOProjector',
            in_channels=512,
            hidden_channels=48,
            bottleneck_channels=16,
            out_channels=64))
    data = model.data_preprocessor(make_batch(batch=2, size=64), True)
    losses = model(**data, mode='loss')
    assert set(losses) == {
        'loss_freq', 'loss_distill', 'teacher_entropy',
        'teacher_marginal_entropy'
    }
    cls, fmap = model.encode(torch.cat(data['inputs']['filtered']))
    assert cls.shape == (4, 512) and fmap.shape == (4, 512, 2, 2)


@pytest.mark.parametrize('key,value,match', [
    ('teacher_momentum', 1.5, 'teacher_momentum'),
    ('teacher_momentum', 1.0, 'teacher_momentum'),
    ('teacher_momentum_end', -0.1, 'teacher_momentum_end'),
])
def test_invalid_options_fail_at_build(key, value, match):
    with pytest.raises(ValueError, match=match):
        build(**{key: value})


def test_vit_without_raw_tokens_is_refused():
    vit = dict(TINY_FOLK['backbone'], out_type='cls_token')
    with pytest.raises(ValueError, match='out_type'):
        build(backbone=vit)


def test_compile_backbone_keeps_keys_and_losses():
    set_schedule()
    eager = build()
    compiled = build(compile_backbone=dict(backend='aot_eager'))
    assert eager.state_dict().keys() == compiled.state_dict().keys()
    assert compiled.teacher.module.backbone._compiled_call_impl is not None
    assert compiled.backbone._compiled_call_impl is not None
    batch = make_batch()
    le = eager(**eager.data_preprocessor(batch, True), mode='loss')
    lc = compiled(**compiled.data_preprocessor(batch, True), mode='loss')
    for key in le:
        torch.testing.assert_close(lc[key], le[key], rtol=1e-4, atol=1e-5)


def _tiny_resnet_folk():
    return build(
        backbone=dict(type='ResNet', depth=18, out_indices=(3, )),
        neck=dict(
            type='SimMIMLinearDecoder', in_channels=512, encoder_stride=32),
        projector=dict(
            type='DINOProjector',
            in_channels=512,
            hidden_channels=48,
            bottleneck_channels=16,
            out_channels=64))


def test_resnet_teacher_batchnorm_statistics_come_from_its_own_views():
    """The teacher's BN running statistics are updated by its own forward
    on the unfiltered views and are never overwritten by the student's
    (statistics of the filtered views), at every step."""
    set_schedule()
    model = _tiny_resnet_folk().train()
    teacher_bn = model.teacher.module.backbone.norm1
    student_bn = model.backbone.norm1
    assert teacher_bn.training and not model.teacher.module.training
    seen = {}
    teacher_bn.register_forward_hook(
        lambda m, args, out: seen.update(x=args[0].detach().clone()))
    model.teacher.module.backbone.register_forward_pre_hook(
        lambda m, args: seen.update(images=args[0].detach().clone()))
    for step in range(2):
        data = model.data_preprocessor(
            make_batch(batch=2, size=64, seed=step), True)
        before = teacher_bn.running_mean.clone()
        before_var = teacher_bn.running_var.clone()
        model(**data, mode='loss')
        torch.testing.assert_close(seen['images'],
                                   torch.cat(data['inputs']['views']))
        x = seen['x']  # (N, C, h, w): input of the teacher's first BN
        m = teacher_bn.momentum
        n = x.numel() / x.shape[1]
        expected_mean = (1 - m) * before + m * x.mean((0, 2, 3))
        expected_var = ((1 - m) * before_var + m * x.var(
            (0, 2, 3), unbiased=False) * n / (n - 1))
        torch.testing.assert_close(teacher_bn.running_mean, expected_mean)
        torch.testing.assert_close(teacher_bn.running_var, expected_var)
        assert not torch.allclose(teacher_bn.running_mean,
                                  student_bn.running_mean)
    assert int(teacher_bn.num_batches_tracked) == 2


def test_teacher_modes_follow_train_and_eval():
    model = _tiny_resnet_folk()
    bns = [
        m for m in model.teacher.modules()
        if isinstance(m, torch.nn.BatchNorm2d)
    ]
    model.eval()
    assert not any(m.training for m in model.teacher.modules())
    model.train()
    assert model.backbone.training and all(m.training for m in bns)
    others = [
        m for m in model.teacher.modules()
        if not isinstance(m, torch.nn.BatchNorm2d)
    ]
    assert others and not any(m.training for m in others)


def test_teacher_is_deterministic_when_the_student_drops_paths():
    set_schedule()
    vit = dict(TINY_VIT, drop_path_rate=0.1, drop_rate=0.1)
    model = build(backbone=vit).train()
    x = torch.randn(4, 3, 32, 32)
    with torch.no_grad():
        t1, t2 = model.teacher(x), model.teacher(x)
        s1 = model.student_encoder()(x)
        s2 = model.student_encoder()(x)
    assert torch.equal(t1, t2)
    assert not torch.allclose(s1, s2)  # the student still drops
    # through the training path: the teacher's targets of one batch are
    # the same whatever the draws of the student
    teacher_out = []
    model.teacher.register_forward_hook(
        lambda m, args, out: teacher_out.append(out.detach().clone()))
    data = model.data_preprocessor(make_batch(), True)
    for _ in range(2):
        # update number 0 copies the (unchanged) student: the same teacher
        model.teacher.steps.zero_()
        model.teacher._host_steps = None
        model(**data, mode='loss')
    torch.testing.assert_close(teacher_out[0], teacher_out[1], rtol=0, atol=0)
