"""Unusual and broken image files through the real pre-training pipeline.

Each case is either handled by the documented policy of
``LoadImageFromFileSafe`` or stopped with an error that names the file.
"""
import os.path as osp

import cv2
import numpy as np
import pytest
import torch
from mmengine.config import Config
from mmengine.dataset import pseudo_collate
from mmpretrain.registry import DATASETS, MODELS, TRANSFORMS
from PIL import Image
from runner_utils import DEMO_CFG

from folk.datasets import ImageLoadError, LoadImageFromFileSafe
from folk.views.crop import resized_crops

CROP = 64
RNG = np.random.default_rng(0)
RGB = RNG.integers(0, 256, (96, 80, 3), dtype=np.uint8)


@pytest.fixture(scope='module')
def cfg():
    return Config.fromfile(DEMO_CFG)


@pytest.fixture(scope='module')
def pipeline(cfg):
    assert cfg.train_pipeline[0]['type'] == 'LoadImageFromFileSafe'
    return [TRANSFORMS.build(t) for t in cfg.train_pipeline]


def _run(pipeline, path):
    """Loaded image (first transform) and the packed result."""
    results = dict(img_path=str(path))
    loaded = None
    for i, t in enumerate(pipeline):
        results = t(results)
        if i == 0:
            loaded = results['img'].copy()
    return loaded, results


def _check_packed(packed):
    # FOLKViews(crop='device'): the decoded image once, two views' crops
    img = packed['inputs']
    assert img.dtype == torch.uint8 and img.dim() == 3 and img.shape[0] == 3
    crops = packed['data_samples'].crop_params
    assert len(crops) == 2
    views = resized_crops([img, img], crops)
    assert views.dtype == torch.uint8
    assert tuple(views.shape) == (2, 3, CROP, CROP)
    assert len(packed['data_samples'].freq_kind) == 2  # a filter per view


# ---------------------------------------------------------------------------
# handled by policy
# ---------------------------------------------------------------------------
def _write(path, array, mode=None):
    Image.fromarray(array, mode).save(path)
    return path


HANDLED = {
    # name: (writer, expected loaded BGR image or None)
    'gray.png':
    (lambda p: _write(p, RGB[..., 0]), np.repeat(RGB[..., :1], 3, axis=2)),
    'gray_alpha.png': (lambda p: _write(p, RGB[..., :2], 'LA'),
                       np.repeat(RGB[..., :1], 3, axis=2)),
    'rgba.png':
    (lambda p: _write(p, np.dstack(
        [RGB, np.full(RGB.shape[:2], 9, np.uint8)]), 'RGBA'), RGB[..., ::-1]),
    'palette.png': (lambda p: Image.fromarray(RGB).convert(
        'P', palette=Image.ADAPTIVE).save(p), None),
    'cmyk.jpg': (lambda p: Image.fromarray(RGB).convert('CMYK').save(p), None),
    'gray.jpg': (lambda p: _write(p, RGB[..., 0]), None),
    'small_10x12.png':
    (lambda p: _write(p, RGB[:10, :12]), RGB[:10, :12, ::-1]),
    'single_pixel.png': (lambda p: _write(p, RGB[:1, :1]), RGB[:1, :1, ::-1]),
    'wide_1x2000.png':
    (lambda p: _write(p,
                      np.tile(RGB[:1], (1, 25, 1))[:, :2000]), None),
    'tall_1000x1.png':
    (lambda p: _write(p,
                      np.tile(RGB[:, :1], (11, 1, 1))[:1000]), None),
}


@pytest.mark.parametrize('name', sorted(HANDLED))
def test_handled_by_policy(tmp_path, pipeline, name):
    writer, expected = HANDLED[name]
    path = tmp_path / name
    writer(str(path))
    loaded, packed = _run(pipeline, path)
    assert loaded.dtype == np.uint8 and loaded.ndim == 3 and \
        loaded.shape[2] == 3
    if expected is not None:
        np.testing.assert_array_equal(loaded, expected)
    if name.startswith('gray'):
        assert (loaded[..., 0] == loaded[..., 2]).all()
    _check_packed(packed)


def test_16bit_png_is_scaled_not_clipped(tmp_path, pipeline):
    rgb16 = RNG.integers(0, 65536, (64, 72, 3), dtype=np.uint16)
    cv2.imwrite(str(tmp_path / 'rgb16.png'), rgb16)  # BGR order for cv2
    cv2.imwrite(str(tmp_path / 'gray16.png'), rgb16[..., 0])
    loaded, packed = _run(pipeline, tmp_path / 'rgb16.png')
    np.testing.assert_array_equal(loaded, (rgb16 >> 8).astype(np.uint8))
    _check_packed(packed)
    loaded, packed = _run(pipeline, tmp_path / 'gray16.png')
    np.testing.assert_array_equal(
        loaded, np.repeat((rgb16[..., :1] >> 8).astype(np.uint8), 3, 2))
    _check_packed(packed)


def test_handled_images_train_the_preprocessor(tmp_path, pipeline, cfg):
    """The views of all odd images form a valid, finite training batch."""
    packed = []
    for name, (writer, _) in sorted(HANDLED.items()):
        writer(str(tmp_path / name))
        packed.append(_run(pipeline, tmp_path / name)[1])
    batch = pseudo_collate(packed)  # as the demo config's loader
    assert len(batch['inputs']) == 10  # one decoded image per sample
    pre = MODELS.build(cfg.data_preprocessor)
    out = pre(batch, training=True)['inputs']
    for key in ('views', 'filtered'):
        assert [tuple(v.shape) for v in out[key]] == [(10, 3, CROP, CROP)] * 2
        assert all(bool(torch.isfinite(v).all()) for v in out[key])


# ---------------------------------------------------------------------------
# stopped with an error naming the file
# ---------------------------------------------------------------------------
def _jpeg_bytes():
    ok, buf = cv2.imencode('.jpg', RGB)
    assert ok
    return buf.tobytes()


def _png_bytes():
    ok, buf = cv2.imencode('.png', RGB)
    assert ok
    return buf.tobytes()


BROKEN = {
    'empty.jpg': (lambda: b'', 'empty file'),
    'not_an_image.jpg': (lambda: b'hello, world\n' * 10, 'not a decodable'),
    'truncated.jpg':
    (lambda: _jpeg_bytes()[:len(_jpeg_bytes()) // 2], 'not a decodable'),
    'truncated_end.jpg': (lambda: _jpeg_bytes()[:-2], 'not a decodable'),
    'truncated.png':
    (lambda: _png_bytes()[:len(_png_bytes()) // 2], 'not a decodable'),
}


@pytest.mark.parametrize('name', sorted(BROKEN) + ['missing.jpg'])
def test_broken_file_error_names_the_file(tmp_path, pipeline, name):
    path = tmp_path / name
    reason = 'cannot read the file'
    if name in BROKEN:
        make, reason = BROKEN[name]
        path.write_bytes(make())
    with pytest.raises(ImageLoadError) as err:
        _run(pipeline, path)
    assert str(path) in str(err.value) and reason in str(err.value)


def test_skip_policy_and_size_limits(tmp_path, monkeypatch):
    from folk.datasets import loading
    logged = []
    monkeypatch.setattr(loading, 'print_log',
                        lambda msg, **kwargs: logged.append(msg))
    (tmp_path / 'bad.jpg').write_bytes(b'')
    _write(str(tmp_path / 'wide.png'), np.tile(RGB[:4], (1, 10, 1)))
    skip = LoadImageFromFileSafe(on_error='skip')
    assert skip(dict(img_path=str(tmp_path / 'bad.jpg'))) is None
    assert 'bad.jpg' in logged[0] and 'skipped' in logged[0]
    with pytest.raises(ImageLoadError, match='wide.png.*aspect ratio'):
        LoadImageFromFileSafe(max_aspect_ratio=10)(
            dict(img_path=str(tmp_path / 'wide.png')))
    with pytest.raises(ImageLoadError, match='wide.png.*min_size=8'):
        LoadImageFromFileSafe(min_size=8)(
            dict(img_path=str(tmp_path / 'wide.png')))
    with pytest.raises(ValueError, match='on_error'):
        LoadImageFromFileSafe(on_error='ignore')
    with pytest.raises(ValueError, match='imdecode_backend'):
        LoadImageFromFileSafe(imdecode_backend='pillow')


def test_error_in_a_dataloader_worker_names_the_file(tmp_path, cfg):
    for i in range(3):
        _write(str(tmp_path / f'ok{i}.png'), RGB)
    (tmp_path / 'zz_truncated.jpg').write_bytes(_jpeg_bytes()[:300])
    dataset = DATASETS.build(
        dict(
            type='CustomDataset',
            data_root=str(tmp_path),
            data_prefix='',
            with_label=False,
            pipeline=cfg.train_pipeline))
    assert len(dataset) == 4
    loader = torch.utils.data.DataLoader(
        dataset, batch_size=4, num_workers=1, collate_fn=pseudo_collate)
    with pytest.raises(ImageLoadError) as err:
        next(iter(loader))
    assert osp.join(str(tmp_path), 'zz_truncated.jpg') in str(err.value)
    assert 'DataLoader worker' in str(err.value)


def test_skip_policy_in_a_dataset_resamples(tmp_path, cfg):
    _write(str(tmp_path / 'ok.png'), RGB)
    (tmp_path / 'bad.jpg').write_bytes(b'garbage')
    pipe = [dict(type='LoadImageFromFileSafe', on_error='skip')] + \
        cfg.train_pipeline[1:]
    dataset = DATASETS.build(
        dict(
            type='CustomDataset',
            data_root=str(tmp_path),
            data_prefix='',
            with_label=False,
            pipeline=pipe))
    paths = [dataset[i]['data_samples'].img_path for i in range(2)]
    assert all(p.endswith('ok.png') for p in paths)


def _knn_evaluator(tmp_path, cfg, bank_files):
    from folk.evaluation import KNNEvaluator
    good = tmp_path / 'good.jpg'
    cv2.imwrite(str(good), RGB)
    (tmp_path / 'query.txt').write_text('good.jpg 0\ngood.jpg 1\n')
    (tmp_path / 'bank.txt').write_text(''.join(
        f'{name} {i % 2}\n' for i, name in enumerate(bank_files)))
    hook = next(h for h in cfg.custom_hooks if h['type'] == 'KNNMonitorHook')
    data = dict(type='CustomDataset', data_root=str(tmp_path), data_prefix='')
    return KNNEvaluator(
        bank=dict(data, ann_file='bank.txt'),
        query=dict(data, ann_file='query.txt'),
        pipeline=hook['pipeline'],  # the demo's knn_pipeline
        batch_size=4,
        num_workers=0)


def test_knn_bank_empty_or_missing_file_refused_at_build(tmp_path, cfg):
    """Fault 59 (D7): a zero-byte image in the k-NN monitor's bank passed
    ``before_train`` and then stopped training at the first evaluation with
    an OpenCV error naming no file, before that iteration's checkpoint."""
    (tmp_path / 'zero.jpg').write_bytes(b'')
    evaluator = _knn_evaluator(tmp_path, cfg,
                               ['good.jpg', 'zero.jpg', 'gone.jpg'])
    with pytest.raises(ValueError) as err:
        evaluator.build()
    msg = str(err.value)
    assert f"{tmp_path / 'zero.jpg'} (empty file)" in msg
    assert f"{tmp_path / 'gone.jpg'} (missing)" in msg
    assert 'bank.txt' in msg


def test_knn_bank_undecodable_file_named(tmp_path, cfg):
    """A truncated JPEG in the bank: the error names the file."""
    data = cv2.imencode('.jpg', RGB)[1].tobytes()
    (tmp_path / 'cut.jpg').write_bytes(data[:len(data) // 2])
    evaluator = _knn_evaluator(tmp_path, cfg, ['good.jpg', 'cut.jpg'])
    # the first batch holds the file: the error comes before any forward
    with pytest.raises(ImageLoadError, match=str(tmp_path / 'cut.jpg')):
        evaluator.evaluate(torch.nn.Identity(), lambda data: data)


def test_max_pixels_rejects_before_decoding(tmp_path, monkeypatch):
    """Fault 54 (D16): a 20000 x 20000 PNG (0.4 MB) decoded to full size
    (4.6 GB peak RSS); there was no size limit."""
    from folk.datasets import loading
    path = str(tmp_path / 'big.png')
    _write(path, np.zeros((300, 200, 3), np.uint8))
    decoded = []
    original = loading.cv2.imdecode
    monkeypatch.setattr(loading.cv2, 'imdecode',
                        lambda *a: decoded.append(1) or original(*a))
    with pytest.raises(
            ImageLoadError,
            match='big.png.*200x300 pixels, more than '
            'max_pixels=50000'):
        LoadImageFromFileSafe(max_pixels=50_000)(dict(img_path=path))
    assert decoded == []  # refused from the header
    assert LoadImageFromFileSafe(max_pixels=60_000)(
        dict(img_path=path))['img'].shape == (300, 200, 3)
    with pytest.raises(ValueError, match='max_pixels'):
        LoadImageFromFileSafe(max_pixels=0)


def test_knn_pipeline_keeps_loaders_with_other_options():
    from folk.evaluation.knn import safe_loading_pipeline
    out = safe_loading_pipeline([
        dict(type='LoadImageFromFile', to_float32=True),
        dict(type='LoadImageFromFile', imdecode_backend='pillow'),
        dict(type='CenterCrop', crop_size=8)
    ])
    assert [s['type'] for s in out
            ] == ['LoadImageFromFileSafe', 'LoadImageFromFile', 'CenterCrop']
