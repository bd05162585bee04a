"""tools/demo.sh and `make demo` find the demo data or say how to make it."""
import os
import os.path as osp
import subprocess

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


def _check(shared, demo_data, make=False):
    env = dict(os.environ, SHARED=str(shared), DEMO_DATA=str(demo_data))
    if make:  # only the data check of the demo target (no install)
        cmd = ['make', '-s', '-n', 'demo']
        return subprocess.run(
            cmd, cwd=REPO, env=env, capture_output=True, text=True)
    return subprocess.run(['bash', 'tools/demo.sh', '--check-data'],
                          cwd=REPO,
                          env=env,
                          capture_output=True,
                          text=True,
                          timeout=60)


def _layout(root):
    for name in ('imagenette128', 'camvid'):
        (root / name).mkdir(parents=True)
        (root / name / 'train.txt').write_text('')


def test_no_data_prints_the_one_command(tmp_path):
    proc = _check(tmp_path / 'shared', tmp_path / 'prepared')
    assert proc.returncode == 1
    assert f'make demo-data DEMO_DATA={tmp_path / "prepared"}' in proc.stderr
    assert ('python tools/dataset_converters/prepare_demo_data.py --out '
            f'{tmp_path / "prepared"}') in proc.stderr


def test_prepared_folder_is_used_without_shared(tmp_path):
    _layout(tmp_path / 'prepared')
    proc = _check(tmp_path / 'shared', tmp_path / 'prepared')
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == f'demo data: {tmp_path / "prepared"}'


def test_shared_data_comes_first(tmp_path):
    _layout(tmp_path / 'shared' / 'data')
    _layout(tmp_path / 'prepared')
    proc = _check(tmp_path / 'shared', tmp_path / 'prepared')
    assert proc.stdout.strip() == f'demo data: {tmp_path / "shared/data"}'


def test_make_demo_checks_the_data_before_installing(tmp_path):
    proc = _check(tmp_path / 'shared', tmp_path / 'prepared', make=True)
    lines = proc.stdout.splitlines()
    check = next(i for i, line in enumerate(lines) if '--check-data' in line)
    install = next(i for i, line in enumerate(lines) if 'install' in line)
    assert check < install
    assert f'DEMO_DATA={tmp_path / "prepared"}' in lines[check]
    # the default prepared folder, as the script's message says
    with open(osp.join(REPO, 'Makefile')) as f:
        assert 'DEMO_DATA ?= data/demo\n' in f.read()
