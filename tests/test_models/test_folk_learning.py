"""FOLK learns: a few dozen CPU iterations of the demo config on real images
lower both loss terms (fixed seed; a learning test, not a timing)."""
import numpy as np
from runner_utils import demo_cfg, run


def test_demo_config_lowers_both_losses(tmp_path, imagenette_root):
    iters = 40
    losses, _ = run(
        demo_cfg(
            tmp_path,
            imagenette_root,
            max_iters=iters,
            batch_size=16,
            ckpt_every=iters))
    assert sorted(losses) == list(range(1, iters + 1))
    # loss_distill is a cross-entropy whose floor is the teacher's entropy
    # (about 5.5 of log(1024) = 6.9 nats here), so it moves less in
    # relative terms; both thresholds are several times the noise of a
    # 5-iteration mean (about 0.04 nats / 0.01 for loss_freq).
    for term, ratio in (('loss_freq', 0.9), ('loss_distill', 0.97)):
        curve = np.array([losses[i][term] for i in range(1, iters + 1)])
        assert np.isfinite(curve).all(), term
        start, end = curve[:5].mean(), curve[-5:].mean()
        assert end < ratio * start, (term, start, end, curve.round(3))
