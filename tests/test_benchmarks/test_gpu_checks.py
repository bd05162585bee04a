"""``benchmarks/gpu_checks.sh --dry-run``: the GPU script's steps on CPU.

Both commands (``quick`` and ``study``) run with tiny sizes, as they would
on the GPU machine but on the CPU, so CI exercises the script itself: the
steps, their timeouts, the log, the report JSON and the exit status.
"""
import json
import os
import os.path as osp
import subprocess
import sys

import pytest

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
SCRIPT = osp.join(REPO, 'benchmarks', 'gpu_checks.sh')
QUICK_STEPS = [
    'install', 'env', 'cuda_checks', 'frequency_throughput',
    'pretrain_throughput', 'pretrain_throughput_compile'
]
STUDY_STEPS = ['install', 'env', 'imagenette_study']


def _env(out, **extra):
    env = dict(os.environ, PYTHON=sys.executable, OUT=str(out))
    env.update(extra)
    return env


@pytest.fixture(scope='module')
def dry_runs(tmp_path_factory):
    """Both commands, started together (two cores), tiny sizes."""
    out = tmp_path_factory.mktemp('gpu')
    # a generous budget: a loaded CI machine must not skip steps
    procs = {
        cmd:
        subprocess.Popen(['bash', SCRIPT, '--dry-run', cmd],
                         env=_env(out, BUDGET_S='900'),
                         stdout=subprocess.PIPE,
                         stderr=subprocess.STDOUT,
                         text=True)
        for cmd in ('quick', 'study')
    }
    results = {
        cmd: (p.communicate(timeout=1200)[0], p.returncode)
        for cmd, p in procs.items()
    }
    return out, results


def _report(out, cmd):
    with open(osp.join(out, f'gpu_checks_{cmd}.json')) as f:
        return json.load(f)


def test_quick_dry_run_passes_every_step(dry_runs):
    out, results = dry_runs
    stdout, rc = results['quick']
    assert rc == 0, stdout
    assert stdout.rstrip().endswith(
        f'all steps passed ({osp.join(out, "gpu_checks_quick.json")})')
    report = _report(out, 'quick')
    assert report['command'] == 'quick' and report['dry_run'] is True
    assert report['finished'] and report['failed'] == []
    steps = report['steps']
    assert [s['name'] for s in steps] == QUICK_STEPS
    assert [s['index'] for s in steps] == list(range(1, 7))
    assert steps[0]['status'] == 'not needed'
    assert all(s['status'] == 'ok' and s['rc'] == 0 for s in steps[1:])
    by_name = {s['name']: s for s in steps}
    env = by_name['env']['result']
    assert env['torch'] and env['cuda_available'] is False
    checks = by_name['cuda_checks']['result']
    assert checks['ok'] is True and checks['device'] == 'cpu'
    assert checks['checks']['projector_float32']['dtype'] == 'torch.float32'
    assert checks['checks']['teacher_deterministic']['teacher_equal']
    assert checks['checks']['teacher_deterministic']['student_differs']
    # the configured path (pipeline, collate, preprocessor of the ViT-B
    # config): the same views under bf16 autocast as without
    configured = checks['checks']['configured_preprocessor_autocast']
    assert configured == dict(images=8, differ=[], ok=True)
    freq = by_name['frequency_throughput']['result']['results']
    assert {r['path'] for r in freq} == {'transform', 'batched'}
    for name, methods in (('pretrain_throughput',
                           ['supervised', 'mfm',
                            'folk']), ('pretrain_throughput_compile',
                                       ['supervised', 'folk'])):
        result = by_name[name]['result']
        assert [r['method'] for r in result['rows']] == methods
        assert result['config']['compile'] == name.endswith('compile')
        assert all(r['images_per_s'] > 0 for r in result['rows'])
    with open(osp.join(out, 'gpu_checks_quick.log')) as f:
        log = f.read()
    for i, name in enumerate(QUICK_STEPS[1:], start=2):
        assert f'=== [{i}] {name} (timeout ' in log
        assert f'=== [{i}] {name}: rc 0 in ' in log
    assert 'folk' in log and 'ratio vs supervised' in log  # step output


def test_study_dry_run_writes_its_results(dry_runs):
    out, results = dry_runs
    stdout, rc = results['study']
    assert rc == 0, stdout
    report = _report(out, 'study')
    assert [s['name'] for s in report['steps']] == STUDY_STEPS
    assert report['failed'] == []
    study = report['steps'][-1]
    assert study['status'] == 'ok'
    path = study['result_path']
    assert osp.basename(path) == 'imagenette_study_gpu_short.json'
    with open(path if osp.isabs(path) else osp.join(REPO, path)) as f:
        data = json.load(f)
    assert set(data['variants']) == {'folk', 'scratch'}


def test_both_commands_return_at_most_8_files(dry_runs):
    out, _ = dry_runs
    files = sorted(os.listdir(out))
    assert len(files) <= 8, files
    assert {
        'gpu_checks_quick.log', 'gpu_checks_quick.json',
        'gpu_checks_study.log', 'gpu_checks_study.json'
    } <= set(files)


def test_exit_status_names_the_first_step_that_did_not_run(tmp_path):
    """With no time left every step is skipped: status 10 + 2 (env)."""
    proc = subprocess.run(['bash', SCRIPT, '--dry-run', 'quick'],
                          env=_env(tmp_path, BUDGET_S='1'),
                          capture_output=True,
                          text=True,
                          timeout=300)
    assert proc.returncode == 12, proc.stdout + proc.stderr
    assert "FAILED at step 2 'env'" in proc.stdout.splitlines()[-1]
    report = _report(tmp_path, 'quick')
    assert report['failed'] == QUICK_STEPS[1:]
    assert all(s['status'] == 'skipped' for s in report['steps'][1:])


def test_unknown_argument_is_refused(tmp_path):
    proc = subprocess.run(['bash', SCRIPT, 'quik'],
                          env=_env(tmp_path),
                          capture_output=True,
                          text=True,
                          timeout=60)
    assert proc.returncode == 2
    assert "unknown argument 'quik'" in proc.stderr
    assert not os.listdir(tmp_path)
