"""DistillHead: one loss call, loss value and the teacher's entropies."""
import math
from unittest import mock

import pytest
import torch
from _tiny import build, set_schedule
from mmpretrain.registry import MODELS

K = 64


def _loss(**kwargs):
    return MODELS.build(dict(type='DistillLoss', out_dim=K, **kwargs))


def test_head_calls_its_loss_once_and_returns_its_outputs():
    set_schedule()
    head = build().distill_head
    torch.manual_seed(0)
    s = [torch.randn(4, K), torch.randn(4, K)]
    t = [torch.randn(4, K), torch.randn(4, K)]
    with mock.patch.object(
            head.loss_module, 'forward',
            wraps=head.loss_module.forward) as forward:
        out = head.loss(s, t)
    assert forward.call_count == 1
    assert set(out) == {
        'loss_distill', 'teacher_entropy', 'teacher_marginal_entropy'
    }
    # no 'loss' in the statistics' names: MMEngine logs them, not sums them
    assert not any('loss' in k for k in out if k != 'loss_distill')
    assert all(v.dim() == 0 and not v.requires_grad for k, v in out.items()
               if k != 'loss_distill')


def test_loss_is_the_mean_of_the_cross_view_terms():
    set_schedule()
    # eval: the centre stays at zero; teacher temperature 0.07 throughout
    loss = _loss(loss_weight=2.0, warmup_teacher_temp=0.07).eval()
    torch.manual_seed(1)
    s = [torch.randn(3, K) for _ in range(3)]
    t = [torch.randn(3, K) for _ in range(3)]
    got, _ = loss(s, t)
    terms = []
    for i in range(3):
        for j in range(3):
            if i != j:
                p = torch.softmax(t[j] / 0.07, -1)
                logq = torch.log_softmax(s[i] / 0.1, -1)
                terms.append(-(p * logq).sum(-1).mean())
    torch.testing.assert_close(got, 2.0 * sum(terms) / 6)
    assert loss.pairs(3) == [(0, 1), (0, 2), (1, 0), (1, 2), (2, 0), (2, 1)]


def test_entropies_of_constructed_teachers():
    set_schedule()
    loss = _loss().eval()
    s = [torch.zeros(4, K), torch.zeros(4, K)]
    # uniform output: H(p) = H(mean p) = ln K
    _, stats = loss(s, [torch.zeros(4, K), torch.zeros(4, K)])
    assert stats['teacher_entropy'].item() == \
        pytest.approx(math.log(K), abs=1e-5)
    assert stats['teacher_marginal_entropy'].item() == \
        pytest.approx(math.log(K), abs=1e-5)
    # every image on prototype 3: H(p) = H(mean p) = 0
    one = torch.zeros(4, K)
    one[:, 3] = 10.
    _, stats = loss(s, [one, one])
    assert stats['teacher_entropy'].item() < 1e-6
    assert stats['teacher_marginal_entropy'].item() < 1e-6
    # image i on its own prototype i: H(p) = 0, H(mean p) = ln 8
    distinct = torch.zeros(8, K)
    distinct[torch.arange(8), torch.arange(8)] = 10.
    _, stats = loss(s, [distinct[:4], distinct[4:]])
    assert stats['teacher_entropy'].item() < 1e-6
    assert abs(stats['teacher_marginal_entropy'].item() - math.log(8)) < 1e-5


def test_view_count_is_checked():
    loss = _loss()
    with pytest.raises(ValueError, match='same number'):
        loss([torch.zeros(2, K)], [torch.zeros(2, K)])
