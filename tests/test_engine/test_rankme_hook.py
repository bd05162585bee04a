"""RankMe: the effective rank of embeddings, and the hook's arguments."""
import math

import pytest
import torch

from folk.engine import RankMeHook, effective_rank


def test_effective_rank_of_known_spectra():
    # orthonormal rows: every singular value equal -> the full rank
    assert effective_rank(torch.eye(8)) == pytest.approx(8, rel=1e-5)
    # one direction (collapse): 1
    rank1 = torch.ones(16, 1) @ torch.randn(1, 32)
    assert effective_rank(rank1) == pytest.approx(1.0, abs=1e-3)
    # two singular values 3:1 -> exp(entropy of (0.75, 0.25))
    z = torch.zeros(4, 5)
    z[0, 0], z[1, 1] = 3.0, 1.0
    ent = -(0.75 * math.log(0.75) + 0.25 * math.log(0.25))
    assert effective_rank(z) == pytest.approx(math.exp(ent), rel=1e-5)
    # bounded by min(N, D), and scale-free
    x = torch.randn(10, 64)
    assert 1 < effective_rank(x) <= 10
    assert effective_rank(5 * x) == pytest.approx(effective_rank(x))
    assert effective_rank(torch.zeros(3, 4)) == 1.0


def test_effective_rank_rejects_bad_shapes():
    with pytest.raises(ValueError, match=r'\(N, D\)'):
        effective_rank(torch.randn(3))


@pytest.mark.parametrize('kwargs, match',
                         [(dict(interval=0), 'interval'),
                          (dict(num_images=1), 'num_images'),
                          (dict(encoders=('ema', )), 'encoders'),
                          (dict(encoders=()), 'encoders')])
def test_hook_rejects_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        RankMeHook(pipeline=[], **kwargs)
