"""benchmarks/step_overhead.py at a tiny size: its table and JSON, and the
counts that the configured preprocessor must keep."""
import importlib.util
import json
import os.path as osp

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


def _load():
    path = osp.join(REPO, 'benchmarks', 'step_overhead.py')
    spec = importlib.util.spec_from_file_location('step_overhead', path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_tiny_run_writes_table_and_json(tmp_path):
    bench = _load()
    out = tmp_path / 'step_overhead.json'
    result = bench.main([
        '--images', '3', '--runner-batch', '2', '--iters', '4',
        '--log-interval', '2', '--out',
        str(out), '--work-dir',
        str(tmp_path / 'work')
    ])
    data = json.loads(out.read_text())
    assert data['preprocessor'] == result['preprocessor']
    small, double = data['preprocessor']
    assert (small['images'], double['images']) == (3, 6)
    for row in (small, double):
        assert row['views'] == [[3 if row is small else 6, 3, 224, 224]] * 2
        # the configured path: no blocking copy, no sync, every part there
        assert row['total_blocking'] == 0 and row['syncs'] == 0
        assert all(row['ops'][part] > 0
                   for part in ('crop', 'photometric', 'other'))
    # the crops and the filters do not grow with the batch
    assert double['ops']['crop'] == small['ops']['crop']
    assert double['ops']['other'] == small['ops']['other']
    runner = data['runner']
    assert len(runner['syncs_per_iter']) == 2
    assert runner['runner_iter_ms'] > 0 and runner['plain_iter_ms'] > 0
    table = (tmp_path / 'step_overhead.md').read_text()
    assert '**whole preprocessor**' in table
    assert 'sync-inducing calls per iteration between log intervals' in table


def test_counter_sees_blocking_copies_and_syncs():
    """The counter is not blind: a pageable copy to the device and an item
    call on a device tensor are counted."""
    import torch
    bench = _load()
    counter = bench.OpCounter()
    with bench.constructor_spy(counter), counter:
        x = torch.ones(4).to('meta')  # blocking host-to-device copy
        torch.as_tensor([1.0, 2.0], device='meta')  # constructor copy
        y = torch.ones(4).to('meta', non_blocking=True)
        (x + y).sum()
    assert sum(counter.blocking.values()) == 2
    assert sum(counter.ops.values()) >= 4
    host = bench.OpCounter(host=True)
    with host:
        torch.ones(2).sum().item()
    assert host.syncs == 1
