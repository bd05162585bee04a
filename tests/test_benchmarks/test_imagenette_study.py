"""The Imagenette study script end to end at its smoke size.

Runs ``benchmarks/imagenette_study.py --preset smoke`` (32 px images, patch
8, a 4-layer 32-d ViT, one epoch over 200 images, tiny evaluations, a few
CamVid iterations) in-process and checks the outputs. Well under a minute on
two CPU cores.
"""
import importlib.util
import json
import math
import os.path as osp

import pytest

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
SCRIPT = osp.join(REPO, 'benchmarks', 'imagenette_study.py')


def _load_script():
    spec = importlib.util.spec_from_file_location('imagenette_study', SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope='module')
def study(tmp_path_factory, imagenette_root, camvid_root):
    out = tmp_path_factory.mktemp('study')
    module = _load_script()
    # Prefer the 64 px pack (what the GPU run reads); fall back to the
    # bundled folders.
    packs = osp.join(osp.dirname(imagenette_root), 'packs')
    data = osp.join(packs, 'imagenette64.zip')
    cam = osp.join(packs, 'camvid240.zip')
    args = ['--preset', 'smoke', '--out-dir', str(out), '--device', 'cpu',
            '--data', data if osp.exists(data) else imagenette_root,
            '--camvid', cam if osp.exists(cam) else camvid_root]
    import torch
    threads = torch.get_num_threads()
    try:
        results = module.main(args)
    finally:
        torch.set_num_threads(threads)  # main() may lower it under load
    return module, out, results


def _finite(x):
    return isinstance(x, (int, float)) and math.isfinite(x)


def test_outputs_exist(study):
    _, out, _ = study
    for ext in ('json', 'md', 'png'):
        path = osp.join(out, f'imagenette_study_smoke.{ext}')
        assert osp.isfile(path) and osp.getsize(path) > 0, path
    with open(osp.join(out, 'imagenette_study_smoke.png'), 'rb') as f:
        assert f.read(8) == b'\x89PNG\r\n\x1a\n'


def test_json_has_every_variant_and_metric(study):
    module, out, _ = study
    with open(osp.join(out, 'imagenette_study_smoke.json')) as f:
        res = json.load(f)
    assert set(res['variants']) == set(module.VARIANTS)
    assert res['preset'] == 'smoke'
    assert res['hardware']['device']
    assert _finite(res['wall_time_s']) and res['wall_time_s'] > 0
    for name, var in res['variants'].items():
        runs = list(var['seeds'].values())
        assert len(runs) == res['config']['seeds'] == 1
        for run in runs:
            for metric in module.METRICS:
                assert _finite(run[metric]), (name, metric, run[metric])
                assert 0.0 <= run[metric] <= 1.0, (name, metric)
            assert _finite(run['pretrain_time_s'])
            assert _finite(run['wall_time_s'])
        summary = var['summary']
        for metric in module.METRICS:
            assert 0.0 <= summary[metric]['mean'] <= 1.0
            assert summary[metric]['std'] == 0.0
        algo = module.VARIANTS[name]['algo']
        if algo is None:  # random init: no pre-training
            assert runs[0]['final_loss_freq'] is None
            assert runs[0]['pretrain_time_s'] == 0.0
            continue
        assert _finite(runs[0]['final_loss_freq'])
        assert runs[0]['final_loss_freq'] > 0
        assert runs[0]['pretrain_time_s'] > 0
        curve = runs[0]['curves']['loss_freq']
        assert len(curve) == runs[0]['iters'] > 0
        assert all(math.isfinite(v) for v in curve)
        if algo == 'FOLK':
            assert _finite(runs[0]['final_loss_distill'])
            assert len(runs[0]['curves']['loss_distill']) == len(curve)
            assert 0.0 <= runs[0]['knn_student'] <= 1.0
            assert runs[0]['weights'] == 'teacher'
        else:
            assert runs[0]['final_loss_distill'] is None
            assert runs[0]['weights'] == 'student'


def test_filters_and_table(study):
    module, out, res = study
    # The filter sets of the variants: Com/RCom vs radius-scaled low/high.
    assert {f['kind'] for f in res['filters']['folk']} == {'com', 'rcom'}
    radial = res['filters']['mfm']
    assert {f['kind'] for f in radial} == {'lowpass', 'highpass'}
    assert radial[0]['radius'] == pytest.approx(16 * 32 / 224)
    assert res['filters']['folk_mfmfilters'] == radial
    with open(osp.join(out, 'imagenette_study_smoke.md')) as f:
        md = f.read()
    for spec in module.VARIANTS.values():
        assert spec['label'] in md
    for col in ('k-NN', 'linear', 'ft-10%', 'ft-100%', 'CamVid mIoU',
                'loss_freq', 'loss_distill', 'pre-train time'):
        assert col in md


def test_views_and_filter_choice():
    """Batched views are uint8 of the right size; filters as the pipeline's."""
    import numpy as np
    import torch
    module = _load_script()
    rng = np.random.default_rng(0)
    imgs = torch.randint(0, 256, (6, 3, 40, 40), dtype=torch.uint8)
    views = module.make_views(imgs, 2, 32, (0.25, 1.0), True, rng)
    assert len(views) == 2
    for v in views:
        assert v.dtype == torch.uint8 and v.shape == (6, 3, 32, 32)
    filters = module.variant_filters('com', 32)
    samples = module.choose_filters(filters, 200, 2, rng)
    kinds = [k for s in samples for k in s.freq_kind]
    params = {p for s in samples for p in s.freq_param}
    assert set(kinds) == {'com', 'rcom'}
    assert params == set(module.FOLK_RATIOS)
    assert 0.35 < kinds.count('com') / len(kinds) < 0.65
