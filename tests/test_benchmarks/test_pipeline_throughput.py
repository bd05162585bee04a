"""The data-pipeline benchmark times the configs' real pipelines."""
import importlib.util
import os.path as osp

import pytest

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


@pytest.fixture(scope='module')
def bench():
    path = osp.join(REPO, 'benchmarks', 'pipeline_throughput.py')
    spec = importlib.util.spec_from_file_location('pipeline_throughput', path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_folk_and_mfm_pipelines_are_timed(bench, imagenette_root):
    files = bench.find_images(imagenette_root, 3)
    assert len(files) == 3
    folk, pillow, mfm = bench.time_pipelines(
        ['folk', 'folk_pillow_jitter', 'mfm'], files, rounds=2, warmup=1)
    assert (folk['views'], folk['view_shape']) == (2, [3, 224, 224])
    assert (mfm['views'], mfm['view_shape']) == (1, [3, 224, 224])
    assert folk['images'] == 6
    names = [s['transform'] for s in folk['steps']]
    assert names == ['LoadImageFromFileSafe', 'FOLKViews',
                     'RandomFrequencyFilter', 'PackInputs']
    for row in (folk, pillow, mfm):
        assert row['ms_per_image'] >= sum(s['ms'] for s in row['steps'])
        assert row['images_per_s_per_core'] == pytest.approx(
            1000 / row['ms_per_image'])
    text = bench.table([folk, mfm], 'header')
    assert '| folk | 2 x 3x224x224 |' in text


def test_pillow_variant_changes_only_the_jitter_backend(bench):
    folk = bench.build_pipeline('folk')
    pillow = bench.build_pipeline('folk_pillow_jitter')
    assert folk[1].jitter_backend == 'cv2'
    assert pillow[1].jitter_backend == 'pillow'
    assert repr(folk[1]).replace("'cv2'", "'pillow'") == repr(pillow[1])


def test_empty_folder_is_named(bench, tmp_path):
    with pytest.raises(FileNotFoundError, match=str(tmp_path)):
        bench.find_images(str(tmp_path), 4)
