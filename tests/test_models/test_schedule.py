"""folk.models.schedule: the position read from the MessageHub."""
from _tiny import set_schedule

from folk.models.schedule import current_iter, phase_iters


def test_current_iter():
    set_schedule(50, 7)
    assert current_iter() == 7
    set_schedule(None, 7)  # no max_iters: not inside a runner
    assert current_iter() is None


def test_phase_iters():
    set_schedule(120, max_epochs=12)  # 10 iterations per epoch
    assert phase_iters(2) == 20
    assert phase_iters(0.25) == 2  # rounded
    assert phase_iters(2, iters=7) == 7
    set_schedule(120)  # iteration-based loop: epochs read as iterations
    assert phase_iters(30) == 30
    set_schedule(None)
    assert phase_iters(3) == 3
