"""folk.models.schedule: the position read from the MessageHub."""
from mmengine.logging import MessageHub

from folk.models.schedule import current_iter, phase_iters


def _hub(**info):
    hub = MessageHub.get_current_instance()
    for key in ('max_iters', 'max_epochs', 'iter'):
        hub.update_info(key, info.get(key))


def test_current_iter():
    _hub(max_iters=50, iter=7)
    assert current_iter() == 7
    _hub(iter=7)  # no max_iters: not inside a runner
    assert current_iter() is None


def test_phase_iters():
    _hub(max_iters=120, max_epochs=12)  # 10 iterations per epoch
    assert phase_iters(2) == 20
    assert phase_iters(0.25) == 2  # rounded
    assert phase_iters(2, iters=7) == 7
    _hub(max_iters=120)  # iteration-based loop: epochs read as iterations
    assert phase_iters(30) == 30
    _hub()
    assert phase_iters(3) == 3
