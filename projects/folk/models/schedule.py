"""Where training stands, read from MMEngine's MessageHub.

Schedules inside the model (the teacher temperature warm-up, the frozen
prototypes at the start) read the runner's ``iter``, ``max_iters`` and
``max_epochs`` from the :class:`~mmengine.logging.MessageHub` instead of
counting calls, so they are a pure function of the iteration: exact on
resume and independent of any model wrapper.
"""
from typing import Optional

from mmengine.logging import MessageHub


def current_iter() -> Optional[int]:
    """The runner's current iteration, or None outside a runner (no
    ``max_iters`` in the message hub)."""
    hub = MessageHub.get_current_instance()
    if hub.get_info('max_iters') is None:
        return None
    return int(hub.get_info('iter', 0))


def phase_iters(epochs: float, iters: Optional[int] = None) -> int:
    """Length in iterations of a phase given in ``epochs`` (or ``iters``,
    which wins when given).

    Epochs are converted with the runner's ``max_iters / max_epochs``; with
    an iteration-based loop (no ``max_epochs``) ``epochs`` is read as a
    number of iterations.
    """
    if iters is not None:
        return int(iters)
    hub = MessageHub.get_current_instance()
    max_iters = hub.get_info('max_iters')
    max_epochs = hub.get_info('max_epochs')
    if max_iters is None or max_epochs is None:
        return int(epochs)
    return int(round(epochs * max_iters / max_epochs))
