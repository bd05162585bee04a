"""The filter's host-to-device copies do not block the host.

``folk.frequency.host_to_device`` copies the filter's small host-side
decisions (k-th largest index, Com / RCom inversion, radial parameters) to
the images' device. For a CUDA device it must copy from pinned memory with
``non_blocking=True`` (a pageable copy makes the host wait for the GPU);
elsewhere it is a plain copy. Without a GPU the CUDA branch is checked by
recording the tensor calls; ``benchmarks/gpu_checks.sh quick`` counts real
synchronisations on a GPU (``filter_sync_free``).
"""
import torch

from folk.frequency import filter_images, host_to_device


def test_cuda_target_copies_from_pinned_memory_without_blocking(monkeypatch):
    calls = []

    def pin_memory(self):
        calls.append('pin_memory')
        return self

    def to(self, *args, **kwargs):
        calls.append(('to', str(args[0]), kwargs.get('non_blocking')))
        return self

    monkeypatch.setattr(torch.Tensor, 'pin_memory', pin_memory)
    monkeypatch.setattr(torch.Tensor, 'to', to)
    host_to_device(torch.arange(3), torch.device('cuda', 0))
    assert calls == ['pin_memory', ('to', 'cuda:0', True)]


def test_cpu_target_is_a_plain_copy():
    t = torch.arange(3)
    out = host_to_device(t, 'cpu')
    assert out.device.type == 'cpu' and torch.equal(out, t)
    assert not out.is_pinned()


def test_filter_uses_the_helper_for_every_device_copy(monkeypatch):
    """Com / RCom and radial images in one batch: every host decision
    reaches the device through ``host_to_device``."""
    import folk.frequency as frequency
    seen = []
    original = frequency.host_to_device

    def record(tensor, device):
        seen.append(tensor.dtype)
        return original(tensor, device)

    monkeypatch.setattr(frequency, 'host_to_device', record)
    x = torch.rand(4, 3, 16, 16)
    kind = torch.tensor([0, 1, 2, 3])
    param = torch.tensor([0.05, 0.05, 4.0, 4.0])
    filter_images(x, kind, param)
    # k - 1 and the indices (long), the inversions (bool), the radii
    assert set(seen) == {torch.long, torch.bool, torch.float32}
