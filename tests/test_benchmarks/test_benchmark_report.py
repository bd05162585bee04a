"""Benchmark results files hold paths relative to the repository."""
import glob
import json
import os.path as osp

from benchmark_report import REPO, relative_paths, write_report


def test_absolute_paths_become_relative_to_the_repository(tmp_path):
    data = dict(
        config=dict(
            data=osp.join(REPO, '..', 'shared', 'data', 'imagenette128'),
            out=osp.join(REPO, 'benchmarks', 'results', 'x.json'),
            images=200,
            name='plain text, not a path'),
        rows=[dict(file=osp.join(REPO, 'configs', 'a.py'), ms=1.5)])
    out = tmp_path / 'report.json'
    write_report(str(out), data, '| a |\n| - |')
    written = json.load(open(out))
    assert written['config'] == dict(
        data=osp.join('..', 'shared', 'data', 'imagenette128'),
        out=osp.join('benchmarks', 'results', 'x.json'),
        images=200,
        name='plain text, not a path')
    assert written['rows'] == [dict(file=osp.join('configs', 'a.py'), ms=1.5)]
    assert open(tmp_path / 'report.md').read() == '| a |\n| - |\n'
    assert data['config']['data'].startswith(REPO)  # input left unchanged


def test_committed_results_hold_no_absolute_paths():
    results = osp.join(REPO, 'benchmarks', 'results')

    def strings(node):
        if isinstance(node, dict):
            for value in node.values():
                yield from strings(value)
        elif isinstance(node, list):
            for value in node:
                yield from strings(value)
        elif isinstance(node, str):
            yield node

    files = glob.glob(osp.join(results, '**', '*.json'), recursive=True)
    assert files
    absolute = [(osp.relpath(f, REPO), s) for f in files
                for s in strings(json.load(open(f))) if osp.isabs(s)]
    assert absolute == []
    assert relative_paths('/x/y', root='/x') == 'y'
