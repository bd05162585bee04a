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


def _recorder(tmp_path):
    """A stand-in ``python`` / ``srun`` that writes its argv and the
    allocator setting as JSON to argv.json, and exits 0."""
    script = tmp_path / 'record'
    script.write_text(
        '#!/usr/bin/env bash\n'
        f'exec {sys.executable} -c "import json, os, sys; '
        "json.dump(dict(argv=sys.argv[1:], alloc=os.environ.get("
        "'PYTORCH_CUDA_ALLOC_CONF')), open(os.environ['ARGV_OUT'], 'w'))"
        '" "$@"\n')
    script.chmod(0o755)
    return str(script)


def _launch(cmd, tmp_path, **env):
    import json
    out = tmp_path / 'argv.json'
    full = dict(os.environ, ARGV_OUT=str(out), **env)
    if 'MASTER_ADDR' not in env:
        full.pop('MASTER_ADDR', None)
    proc = subprocess.run(
        cmd, cwd=REPO, env=full, capture_output=True, text=True, timeout=60)
    record = json.loads(out.read_text()) if out.exists() else None
    return proc, record


# a value with a space and a glob character, as --cfg-options may carry
ARGS = ['--cfg-options', 'work_dir=a b', 'experiment_name=*']


def test_dist_train_forwards_arguments_quoted(tmp_path):
    proc, record = _launch(
        ['bash', 'tools/dist_train.sh', 'CFG.py', '2'] + ARGS,
        tmp_path,
        PYTHON=_recorder(tmp_path))
    assert proc.returncode == 0, proc.stderr
    assert record['argv'][-len(ARGS) - 2:] == ['--launcher', 'pytorch'] + ARGS
    assert record['alloc'] == 'expandable_segments:True'


def test_dist_train_refuses_nodes_without_master_addr(tmp_path):
    proc, record = _launch(['bash', 'tools/dist_train.sh', 'CFG.py', '8'],
                           tmp_path,
                           PYTHON=_recorder(tmp_path),
                           NNODES='2')
    assert proc.returncode == 2 and record is None
    assert 'NNODES=2 needs MASTER_ADDR' in proc.stderr
    proc, record = _launch(['bash', 'tools/dist_train.sh', 'CFG.py', '8'],
                           tmp_path,
                           PYTHON=_recorder(tmp_path),
                           NNODES='2',
                           MASTER_ADDR='10.0.0.1')
    assert proc.returncode == 0 and '--master_addr=10.0.0.1' in record['argv']


def test_slurm_train_cpus_and_quoted_arguments(tmp_path):
    bin_dir = tmp_path / 'bin'
    bin_dir.mkdir()
    os.symlink(_recorder(tmp_path), bin_dir / 'srun')
    path = str(bin_dir) + os.pathsep + os.environ['PATH']
    proc, record = _launch(
        ['bash', 'tools/slurm_train.sh', 'part', 'job', 'CFG.py', 'wd'] + ARGS,
        tmp_path,
        PATH=path)
    assert proc.returncode == 0, proc.stderr
    argv = record['argv']
    # 8 data workers + the main process and its pin-memory thread per GPU
    assert '--cpus-per-task=10' in argv
    assert argv[-len(ARGS):] == ARGS
    assert record['alloc'] == 'expandable_segments:True'
