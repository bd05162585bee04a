"""One host-to-device copy for all per-step parameters of the views, and
the autocast-free region the views are computed in."""
import contextlib
from typing import Dict

import numpy as np
import torch

_ALIGN = 8  # bytes: every array starts at a multiple of its item size


class HostPack:
    """Collect small host arrays and move them to a device in one copy.

    The arrays are packed into one uint8 host buffer, which is copied with a
    single non-blocking copy (from pinned memory on CUDA, so the host does
    not wait for the device); the device tensors are typed views of the
    copied buffer.

    Example::

        pack = HostPack()
        pack.add('weights', np.ones((4, 3), np.float32))
        dev = pack.to(torch.device('cuda'))  # dev['weights']: (4, 3) f32
    """

    def __init__(self) -> None:
        self._arrays: Dict[str, np.ndarray] = {}

    def add(self, name: str, array: np.ndarray) -> None:
        """Add ``array`` (any numeric dtype) under ``name``."""
        if name in self._arrays:
            raise KeyError(f'HostPack: {name!r} was added twice')
        self._arrays[name] = np.ascontiguousarray(array)

    def to(self, device: torch.device) -> Dict[str, torch.Tensor]:
        """Copy every added array to ``device``; returns name -> tensor."""
        device = torch.device(device)
        offsets, total = {}, 0
        for name, a in self._arrays.items():
            total = -(-total // _ALIGN) * _ALIGN
            offsets[name] = total
            total += a.nbytes
        host = torch.empty(
            max(total, 1), dtype=torch.uint8, pin_memory=device.type == 'cuda')
        flat = host.numpy()
        for name, a in self._arrays.items():
            flat[offsets[name]:offsets[name] + a.nbytes] = a.reshape(-1).view(
                np.uint8)
        buf = host if device.type == 'cpu' else host.to(
            device, non_blocking=True)
        out = {}
        for name, a in self._arrays.items():
            start = offsets[name]
            dtype = torch.from_numpy(a[:0]).dtype
            out[name] = buf[start:start + a.nbytes].view(dtype).view(a.shape)
        return out


def autocast_off(device) -> contextlib.AbstractContextManager:
    """Disable autocast on ``device`` (the views need exact float32 /
    float64 arithmetic); a no-op where autocast does not exist (``meta``).
    """
    kind = torch.device(device).type
    if not torch.amp.is_autocast_available(kind):
        return contextlib.nullcontext()
    return torch.autocast(kind, enabled=False)


__all__ = ['HostPack', 'autocast_off']
