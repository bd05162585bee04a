"""The shell launchers and MMPretrain's `mim train` run the demo config."""
import os
import os.path as osp
import subprocess
import sys

from runner_utils import DEMO_CFG, REPO

SHORT = [
    'train_cfg.max_iters=2', 'default_hooks.checkpoint.interval=2',
    'default_hooks.logger.interval=1', 'train_dataloader.batch_size=4',
    'train_dataloader.num_workers=0',
    'train_dataloader.persistent_workers=False'
]


def _run(cmd, tmp_path, imagenette_root):
    env = dict(os.environ, PYTHONUNBUFFERED='1')
    env['PATH'] = osp.dirname(sys.executable) + os.pathsep + env['PATH']
    opts = SHORT + [f'train_dataloader.dataset.data_root={imagenette_root}/']
    proc = subprocess.run(
        cmd + ['--work-dir', str(tmp_path), '--cfg-options'] + opts,
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert osp.isfile(tmp_path / 'iter_2.pth')
    return proc.stdout + proc.stderr


def test_dist_train_two_cpu_processes(tmp_path, imagenette_root):
    env_port = str(29500 + os.getpid() % 1000)
    os.environ['PORT'] = env_port
    try:
        log = _run(['bash', 'tools/dist_train.sh', DEMO_CFG, '2'], tmp_path,
                   imagenette_root)
    finally:
        os.environ.pop('PORT')
    assert 'World size: 2' in log
    assert 'Iter(train) [2/2]' in log


def test_mim_train_mmpretrain(tmp_path, imagenette_root):
    mim = osp.join(osp.dirname(sys.executable), 'mim')
    log = _run([mim, 'train', 'mmpretrain', DEMO_CFG], tmp_path,
               imagenette_root)
    assert 'Iter(train) [2/2]' in log
