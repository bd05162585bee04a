"""Wrong input a new user gives, and two runs sharing one work dir.

Each case gave a silent wrong result or an unclear error before; each
must now work or stop with a message naming the key, file or fix.
``tools/train.py`` cases run the real script (they stop before training).
"""
import os
import os.path as osp
import subprocess
import sys
import textwrap

import pytest
import torch
from mmengine.config import Config
from runner_utils import DEMO_CFG, REPO

from folk.engine.checkpoint import (WorkDirLock, atomic_torch_save,
                                    is_temporary_file)
from folk.engine.launch import check_cfg_options, check_optim_wrapper

TRAIN = osp.join(REPO, 'tools', 'train.py')


def _train(work_dir, *options, timeout=300):
    cmd = [sys.executable, TRAIN, DEMO_CFG, '--work-dir', str(work_dir)]
    if options:
        cmd += ['--cfg-options', *options]
    return subprocess.run(
        cmd,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=dict(os.environ, OMP_NUM_THREADS='1'))


def test_misspelt_top_level_option_refused(tmp_path):
    """``optim_wraper.optimizer.lr=1e-3`` trained at the old lr, rc 0."""
    out = _train(tmp_path, 'optim_wraper.optimizer.lr=1e-3')
    assert out.returncode != 0
    assert "--cfg-options optim_wraper.optimizer.lr: the config has no " \
        "top-level key 'optim_wraper'" in out.stderr
    assert "did you mean 'optim_wrapper'?" in out.stderr
    assert not osp.exists(tmp_path / 'iter_1.pth')


def test_top_level_options_the_runner_reads_pass():
    cfg = Config.fromfile(DEMO_CFG)
    check_cfg_options(
        cfg, {
            'optim_wrapper.optimizer.lr': 1e-3,
            'randomness.seed': 3,
            'model_wrapper_cfg.find_unused_parameters': True,
            'load_from': 'x.pth',
            'compile': True,
        })
    with pytest.raises(KeyError, match="did you mean 'train_cfg'"):
        check_cfg_options(cfg, {'train_cgf.max_iters': 4})


def test_fp16_options_on_optim_wrapper_refused(tmp_path):
    """The documented fp16 recipe gave ``TypeError: OptimWrapper.__init__()
    got an unexpected keyword argument 'dtype'`` on OptimWrapper configs."""
    out = _train(tmp_path, 'optim_wrapper.dtype=float16',
                 'optim_wrapper.loss_scale=dynamic')
    assert out.returncode != 0
    # the demo trains with SyncFreeOptimWrapper: its AMP counterpart is named
    assert ("optim_wrapper.dtype and optim_wrapper.loss_scale need "
            "optim_wrapper.type='SyncFreeAmpOptimWrapper'") in out.stderr
    assert 'optim_wrapper.type=SyncFreeAmpOptimWrapper' in out.stderr
    # MMEngine's OptimWrapper: AmpOptimWrapper is named
    cfg = Config.fromfile(DEMO_CFG)
    cfg.merge_from_dict({
        'optim_wrapper.type': 'OptimWrapper',
        'optim_wrapper.dtype': 'float16'
    })
    with pytest.raises(ValueError, match="type='AmpOptimWrapper'"):
        check_optim_wrapper(cfg)
    # the documented recipe, with the type, is accepted
    for amp in ('AmpOptimWrapper', 'SyncFreeAmpOptimWrapper'):
        cfg = Config.fromfile(DEMO_CFG)
        cfg.merge_from_dict({
            'optim_wrapper.type': amp,
            'optim_wrapper.dtype': 'float16',
            'optim_wrapper.loss_scale': 'dynamic'
        })
        check_optim_wrapper(cfg)


def test_second_run_in_a_work_dir_refused(tmp_path):
    """Faults 46 / 48 (D8): two runs in one work dir wrote the same files,
    and one deleted the other's save in progress."""
    holder = subprocess.Popen([
        sys.executable, '-c',
        textwrap.dedent(f'''
            import sys, time
            from folk.engine.checkpoint import WorkDirLock
            lock = WorkDirLock({str(tmp_path)!r}).acquire()
            print('locked', flush=True)
            time.sleep(120)
            ''')
    ],
                              stdout=subprocess.PIPE,
                              text=True)
    try:
        assert holder.stdout.readline().strip() == 'locked'
        out = _train(tmp_path)
        assert out.returncode != 0
        assert f'another run (pid {holder.pid}) is using the work dir ' \
            f'{tmp_path}' in out.stderr
        assert not any(osp.isdir(tmp_path / n)
                       for n in os.listdir(tmp_path))  # no log
        # the other run's save in progress is not a leftover
        live_tmp = f'.iter_5.pth.{holder.pid}.0123abcd.tmp'
        assert not is_temporary_file(live_tmp)
    finally:
        holder.kill()
        holder.wait()
    # a killed holder leaves no stale lock, and its tmp file is a leftover
    assert is_temporary_file(live_tmp)
    with WorkDirLock(str(tmp_path)):
        pass


def test_full_disk_names_the_checkpoint_and_the_space_needed(
        tmp_path, monkeypatch):
    """Faults 30 / 31 (D14): the last line was torch's ``enforce fail ...
    unexpected pos``, naming neither the file nor the space needed."""

    def save(obj, f):
        try:
            raise OSError(28, 'No space left on device')
        except OSError:
            raise RuntimeError('[enforce fail at inline_container.cc:672] . '
                               'unexpected pos 26881728 vs 26881620')

    monkeypatch.setattr(torch, 'save', save)
    path = str(tmp_path / 'iter_3.pth')
    with pytest.raises(OSError) as err:
        atomic_torch_save({'w': torch.zeros(3)}, path)
    msg = str(err.value)
    assert f'cannot write {path}: No space left on device' in msg
    assert 'MiB free' in msg and 'max_keep_ckpts + 1' in msg
    assert os.listdir(tmp_path) == []


_DDP = r'''
import os, sys, torch
import folk  # noqa: F401
from mmengine.model import MMDistributedDataParallel
torch.distributed.init_process_group(
    'gloo', init_method='file://' + sys.argv[1], rank=0, world_size=1)
# what MMEngine's Runner.wrap_model passes without a model_wrapper_cfg
model = MMDistributedDataParallel(
    module=torch.nn.Linear(2, 2), device_ids=[0], broadcast_buffers=False)
print('wrapped', model.device_ids)
'''


@pytest.mark.skipif(torch.cuda.is_available(), reason='the CPU-only path')
def test_cpu_ddp_without_device_ids(tmp_path):
    """``mim train ... --launcher pytorch`` on CPU: DDP refused
    ``device_ids=[0]`` for a CPU module (ValueError)."""
    script = tmp_path / 'ddp.py'
    script.write_text(_DDP)
    out = subprocess.run(
        [sys.executable,
         str(script),
         str(tmp_path / 'rendezvous')],
        capture_output=True,
        text=True,
        timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    assert 'wrapped None' in out.stdout


def test_mmseg_file_into_mmpretrain_init_cfg_names_the_converter(tmp_path):
    """An MMSeg-format file in an MMPretrain fine-tune's ``init_cfg`` gave
    MMEngine's bare ``AssertionError: backbone. is not in the pretrained
    model``."""
    from mmpretrain.models import VisionTransformer
    path = str(tmp_path / 'backbone_mmseg.pth')
    torch.save({'state_dict': {'layers.0.ln1.weight': torch.ones(192)}}, path)
    vit = VisionTransformer(
        arch='deit-tiny',
        img_size=32,
        patch_size=8,
        init_cfg=dict(type='Pretrained', checkpoint=path, prefix='backbone.'))
    with pytest.raises(KeyError) as err:
        vit.init_weights()
    msg = str(err.value)
    assert path in msg and "no 'backbone.' keys" in msg
    assert "['layers.']" in msg and 'folk_to_mmpretrain.py' in msg


def test_gpu_bundle_for_another_python_is_not_used(tmp_path):
    """A ``.device/`` bundle of cp312 wheels (``gpu_bundle.sh``) made the
    dry run, and so ``make test``, fail on Python 3.11 (``... is not a
    supported wheel on this platform``)."""
    import json
    other = 'cp310' if sys.version_info[:2] != (3, 10) else 'cp312'
    wheels = tmp_path / 'bundle' / 'wheels'
    wheels.mkdir(parents=True)
    (wheels / f'regex-2026.1.1-{other}-{other}-manylinux_2_17_x86_64.whl'
     ).write_bytes(b'')
    (wheels / 'ftfy-6.3.1-py3-none-any.whl').write_bytes(b'')
    out = tmp_path / 'out'
    # a 1 s budget: the install decision, then every later step skipped
    proc = subprocess.run([
        'bash',
        osp.join(REPO, 'benchmarks', 'gpu_checks.sh'), '--dry-run', 'quick'
    ],
                          env=dict(
                              os.environ,
                              PYTHON=sys.executable,
                              OUT=str(out),
                              BUDGET_S='1',
                              DEVICE_DIR=str(tmp_path / 'bundle')),
                          cwd=REPO,
                          capture_output=True,
                          text=True,
                          timeout=300)
    report = json.load(open(out / 'gpu_checks_quick.json'))
    install = report['steps'][0]
    assert install['name'] == 'install' and install['rc'] == 0, install
    assert install['status'] == 'not needed'
    assert 'built for another Python' in install['note']
    assert other in install['note']
    # the first step that did not run is env (no time), not install
    assert "FAILED at step 2 'env'" in proc.stdout.splitlines()[-1]
    assert not (tmp_path / 'bundle' / 'site').exists()
