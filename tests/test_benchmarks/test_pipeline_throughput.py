"""The data-pipeline benchmarks time the configs' real pipelines."""
import importlib.util
import os
import os.path as osp

import cv2
import numpy as np
import pytest

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


def _load(name: str):
    path = osp.join(REPO, 'benchmarks', f'{name}.py')
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope='module')
def bench():
    return _load('pipeline_throughput')


@pytest.fixture(scope='module')
def jpeg():
    return _load('jpeg_decode')


def test_folk_and_mfm_pipelines_are_timed(bench, imagenette_root):
    files = bench.find_images(imagenette_root, 3)
    assert len(files) == 3
    folk, cpu_crop, cpu_aug, mfm = bench.time_pipelines(
        ['folk', 'folk_cpu_crop', 'folk_cpu_aug', 'mfm'],
        files,
        rounds=2,
        warmup=1)
    for row in (folk, cpu_crop, cpu_aug):
        assert (row['views'], row['view_shape']) == (2, [3, 224, 224])
    assert (mfm['views'], mfm['view_shape']) == (1, [3, 224, 224])
    assert folk['views_cut_on_device'] and not cpu_crop['views_cut_on_device']
    assert folk['images'] == 6
    names = [s['transform'] for s in folk['steps']]
    assert names == [
        'LoadImageFromFileSafe', 'FOLKViews', 'RandomFrequencyFilter',
        'PackInputs'
    ]
    for row in (folk, cpu_crop, cpu_aug, mfm):
        assert row['ms_per_image'] >= sum(s['ms'] for s in row['steps'])
        assert row['images_per_s_per_core'] == pytest.approx(
            1000 / row['ms_per_image'])
    ratios = bench.cost_ratios([folk, cpu_aug, mfm])
    assert ratios['mfm'] == 1.0
    assert ratios['folk'] == pytest.approx(folk['ms_per_image'] /
                                           mfm['ms_per_image'])
    text = bench.table([folk, cpu_crop, mfm], 'header')
    assert '| folk | 2 x 3x224x224 (cut on the device) |' in text
    assert '| folk_cpu_crop | 2 x 3x224x224 |' in text
    assert '| 1.00 |' in text


def test_variants_change_only_where_the_work_runs(bench):
    folk = bench.build_pipeline('folk')
    crop = bench.build_pipeline('folk_cpu_crop')
    cpu = bench.build_pipeline('folk_cpu_aug')
    # the configs' default: crops and photometric on the device
    assert (folk[1].crop, folk[1].photometric) == ('device', 'device')
    assert (crop[1].crop, crop[1].photometric) == ('cpu', 'device')
    assert (cpu[1].crop, cpu[1].photometric) == ('cpu', 'cpu')
    assert repr(folk[1]).replace("crop='device'",
                                 "crop='cpu'") == repr(crop[1])
    assert repr(crop[1]).replace("'device'", "'cpu'") == repr(cpu[1])
    assert {'photometric_params', 'crop_params'} <= set(folk[-1].meta_keys)


def test_device_side_rows_measure_agreement_with_mmcv(bench, imagenette_root):
    files = bench.find_images(imagenette_root, 3)
    samples = bench.device_batch(files, 3, crop=32, method='folk_cpu_crop')
    uncut = bench.device_batch(files, 3, crop=32)
    rows = bench.time_device_side(samples, uncut, ['cpu'], dict(cpu=1))
    by = {r['what']: r for r in rows}
    once = bench.time_device_side(samples, uncut, ['cpu'], dict(cpu=0))
    assert len(once) == 4  # CPU default: the whole preprocessor once
    assert set(by) == {
        'crops (folk.views.crop) vs Pillow', 'photometric (folk)',
        'photometric (kornia)', 'preprocessor, filters only',
        'preprocessor, photometric + filters',
        'preprocessor, crops + photometric + filters'
    }
    assert all(r['views'] == 6 and r['ms_per_batch'] > 0 for r in rows)
    crops = by['crops (folk.views.crop) vs Pillow']
    assert crops['mean_abs_diff_vs_mmcv'] < 0.25
    assert crops['pixels_over_1_level'] < 0.01
    assert by['photometric (folk)']['max_abs_diff_vs_mmcv'] <= 1
    assert by['photometric (kornia)']['mean_abs_diff_vs_mmcv'] > \
        by['photometric (folk)']['mean_abs_diff_vs_mmcv']
    text = bench.device_table(rows, 'header')
    assert '| photometric (folk) | cpu | 6 |' in text


def test_empty_folder_is_named(bench, tmp_path):
    with pytest.raises(FileNotFoundError, match=str(tmp_path)):
        bench.find_images(str(tmp_path), 4)


def test_fullsize_jpegs_and_decoders(jpeg, camvid_root, tmp_path):
    src = osp.join(camvid_root, 'images', 'train')
    paths = jpeg.make_fullsize_jpegs(str(tmp_path), 3, (500, 375), src=src)
    assert len(paths) == 3
    img = cv2.imread(paths[0])
    assert img.shape == (375, 500, 3)
    first = osp.join(src, sorted(os.listdir(src))[0])
    frame = cv2.resize(
        cv2.imread(first), (500, 375), interpolation=cv2.INTER_CUBIC)
    assert np.abs(img.astype(int) - frame).mean() < 6  # the same scene
    data = open(paths[0], 'rb').read()
    for name, decode in jpeg.DECODERS.items():
        out = decode(data)
        assert out.shape == img.shape and out.dtype == np.uint8, name
        # all four decode with libjpeg-turbo's defaults: the same pixels
        assert np.abs(out.astype(int) - img).max() <= 1, name
    rows = jpeg.time_decoders(paths, ['cv2', 'simplejpeg_dct'], rounds=1)
    assert [r['decoder'] for r in rows] == ['cv2', 'simplejpeg_dct']
    assert rows[0]['crop_mean_abs_diff_vs_cv2'] == 0
    # 500x375 crops never allow a reduced decode at 224 px: same crops
    assert rows[1]['crop_mean_abs_diff_vs_cv2'] == 0
    assert rows[1]['decode_ms'] is None and rows[1]['decode_crop_ms'] > 0
    text = jpeg.table({'500x375': rows}, 'header')
    assert '| 500x375 | cv2 | cpu |' in text


def test_dct_decode_keeps_the_crop_box(jpeg, camvid_root, tmp_path):
    """A large JPEG decoded at 1/2 size gives the crop of the full decode
    (same box), up to the decoder's downscaling."""
    src = osp.join(camvid_root, 'images', 'train')
    path = jpeg.make_fullsize_jpegs(str(tmp_path), 1, (1000, 750), src=src)[0]
    data = open(path, 'rb').read()
    box = (100, 200, 600, 700)  # top, left, h, w: 1/2 still >= 224
    full = jpeg.resize_box(jpeg.decode_cv2(data), box)
    dct = jpeg.decode_crop_dct(data, box)
    assert dct.shape == full.shape == (224, 224, 3)
    d = np.abs(dct.astype(int) - full)
    assert 0 < d.mean() < 4
