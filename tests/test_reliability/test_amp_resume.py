"""Resume with mixed precision: the fp16 loss scaler, and bf16 -> fp16.

MMEngine's ``AmpOptimWrapper`` refuses to be built without a GPU, uses
``torch.cuda.amp.GradScaler`` and its ``autocast`` allows only bf16 on the
CPU. To run the real Runner checkpoint / resume path on a CPU, the fixture
``cpu_amp`` (``tests/conftest.py``, ``runner_utils.cpu_amp``) patches
exactly these points: the device assertion, the scaler
(``torch.amp.GradScaler('cpu')``: the same class and state as the CUDA
scaler, on the CPU) and the autocast context (``torch.autocast('cpu',
dtype)``). What is tested is the plumbing: the wrapper's ``state_dict``
goes into the checkpoint (``optimizer.loss_scaler``), passes the safe
loader and is restored by ``--resume``; the scaling arithmetic on a GPU is
torch's and is not tested here.
"""
import os.path as osp

import pytest
import torch
from runner_utils import demo_cfg, run

from folk.engine.checkpoint import safe_torch_load


def _amp_cfg(work_dir, data_root, dtype, loss_scale, **options):
    cfg = demo_cfg(work_dir, data_root, batch_size=4, ckpt_every=1, **options)
    optim = cfg.optim_wrapper
    optim.update(type='AmpOptimWrapper', dtype=dtype, loss_scale=loss_scale)
    # the demo's k-NN monitor (its own autocast, unpatched) is unrelated
    cfg.custom_hooks = [
        h for h in cfg.custom_hooks if h['type'] != 'KNNMonitorHook'
    ]
    return cfg


# growth every 3 finite steps: after 2 steps the growth tracker is 2, and a
# scaler that was not restored would not grow at step 3
FP16 = dict(init_scale=2.**10, growth_interval=3)


def _scaler(path):
    return safe_torch_load(path)['optimizer']['loss_scaler']


def test_fp16_loss_scaler_state_resumes(tmp_path, imagenette_root, cpu_amp):
    full, runner = run(
        _amp_cfg(
            tmp_path / 'full', imagenette_root, 'float16', FP16, max_iters=3))
    assert type(runner.optim_wrapper).__name__ == 'AmpOptimWrapper'
    at_2 = _scaler(tmp_path / 'full' / 'iter_2.pth')
    fresh = torch.amp.GradScaler('cpu', **FP16)
    fresh.scale(torch.ones(()))  # materialise the scale
    assert at_2 != fresh.state_dict()  # the state moved: not vacuous

    crashed, _ = run(
        _amp_cfg(
            tmp_path / 'crash', imagenette_root, 'float16', FP16, max_iters=3),
        crash_after=2)
    assert sorted(crashed) == [1, 2]
    assert _scaler(tmp_path / 'crash' / 'iter_2.pth') == at_2
    resumed, runner = run(
        _amp_cfg(
            tmp_path / 'crash',
            imagenette_root,
            'float16',
            FP16,
            max_iters=3,
            resume=True))
    assert sorted(resumed) == [3]
    assert runner.optim_wrapper.loss_scaler.state_dict() == \
        _scaler(tmp_path / 'full' / 'iter_3.pth')
    for key, value in full[3].items():
        assert resumed[3][key] == pytest.approx(value, rel=1e-5), key


def test_bf16_checkpoint_resumed_as_fp16_stops_with_a_clear_error(
        tmp_path, imagenette_root, cpu_amp):
    """The bf16 configs disable the scaler (its state is empty). Resuming
    with ``optim_wrapper.dtype=float16 optim_wrapper.loss_scale=dynamic``
    stops before any training step, the checkpoint untouched: first the
    resume check names the changed keys; once the change is accepted,
    the empty scaler state cannot be loaded (torch's error says why)."""
    run(
        _amp_cfg(
            tmp_path,
            imagenette_root,
            'bfloat16',
            dict(enabled=False),
            max_iters=1))
    ckpt = tmp_path / 'iter_1.pth'
    assert _scaler(ckpt) == {}
    before = ckpt.read_bytes()
    cfg = _amp_cfg(
        tmp_path,
        imagenette_root,
        'float16',
        'dynamic',
        max_iters=1,
        resume=True)
    with pytest.raises(RuntimeError) as err:
        run(cfg)
    assert "optim_wrapper.dtype: 'bfloat16' -> 'float16'" in str(err.value)
    assert 'optim_wrapper.loss_scale' in str(err.value)
    cfg = _amp_cfg(
        tmp_path,
        imagenette_root,
        'float16',
        'dynamic',
        max_iters=1,
        resume=True)
    cfg.default_hooks.checkpoint.resume_allow_changes = True
    with pytest.raises(
            RuntimeError, match='saved from a disabled instance '
            'of GradScaler'):
        run(cfg)
    assert ckpt.read_bytes() == before
    assert not osp.exists(tmp_path / 'iter_2.pth')
