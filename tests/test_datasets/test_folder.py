"""ImageFolderDataset and the check of the training data before a run."""
import os.path as osp

import cv2
import numpy as np
import pytest
from mmengine.config import Config

from folk.datasets import ImageFolderDataset, TrainDataError, check_train_data
from folk.datasets.folder import CUSTOM_CONFIG, DEMO_CUSTOM_CONFIG


def _jpg(path, size=(20, 30)):
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), np.full((*size, 3), 127, np.uint8))


def _cfg(kind='ImageFolderDataset', **dataset):
    return Config(
        dict(train_dataloader=dict(dataset=dict(type=kind, **dataset))))


def test_lists_nested_images_sorted_without_hidden_or_other_files(tmp_path):
    for rel in ('b.jpg', 'a/x.PNG', 'a/deep/er/y.webp', 'c.tiff'):
        _jpg(tmp_path / rel)
    (tmp_path / 'notes.txt').write_text('no image')
    _jpg(tmp_path / '._b.jpg')
    _jpg(tmp_path / '.cache' / 'z.jpg')
    ds = ImageFolderDataset(data_root=str(tmp_path), pipeline=[])
    rel = [osp.relpath(d['img_path'], tmp_path) for d in ds]
    assert rel == [
        osp.join('a', 'deep', 'er', 'y.webp'),
        osp.join('a', 'x.PNG'), 'b.jpg', 'c.tiff'
    ]
    assert all('gt_label' not in d for d in ds)


@pytest.mark.parametrize('case', ['missing', 'empty', 'no_images'])
def test_dataset_refuses_a_folder_without_images(tmp_path, case):
    root = tmp_path / 'data'
    if case != 'missing':
        root.mkdir()
    if case == 'no_images':
        (root / 'readme.txt').write_text('x')
    with pytest.raises(TrainDataError) as err:
        ImageFolderDataset(data_root=str(root), pipeline=[])
    assert str(root) in str(err.value)
    assert 'docs/custom_data.md' in str(err.value)


def test_dataset_takes_no_labels(tmp_path):
    with pytest.raises(TypeError, match='with_label'):
        ImageFolderDataset(data_root=str(tmp_path), with_label=True)


@pytest.mark.parametrize('case', ['missing', 'empty', 'unreadable'])
def test_check_names_path_layout_docs_and_config(tmp_path, case):
    root = tmp_path / 'my images'
    if case != 'missing':
        root.mkdir()
    if case == 'unreadable':
        (root / 'a.jpg').write_bytes(b'\xff\xd8\xff\xe0 not a jpeg')
        (root / 'b.png').write_bytes(b'')
    with pytest.raises(TrainDataError) as err:
        check_train_data(_cfg(data_root=str(root)))
    msg = str(err.value)
    for part in (str(root), 'flat or nested', 'docs/custom_data.md',
                 CUSTOM_CONFIG, DEMO_CUSTOM_CONFIG):
        assert part in msg
    if case == 'unreadable':
        assert 'none of the first 2 image files decodes' in msg


def test_check_passes_with_one_readable_image(tmp_path):
    (tmp_path / 'bad.jpg').write_bytes(b'junk')
    _jpg(tmp_path / 'sub' / 'good.jpg')
    check_train_data(_cfg(data_root=str(tmp_path)))


def test_check_imagenet_config_without_imagenet(tmp_path, repo_root):
    cfg = Config.fromfile(
        osp.join(repo_root, 'configs', 'folk',
                 'folk_vit-base-p16_8xb128-amp-coslr-300e_in1k.py'))
    cfg.train_dataloader.dataset.data_root = str(tmp_path / 'imagenet')
    with pytest.raises(TrainDataError, match=CUSTOM_CONFIG):
        check_train_data(cfg)
    # an annotation file that is not there
    (tmp_path / 'imagenet').mkdir()
    cfg = _cfg('CustomDataset', data_root=str(tmp_path), ann_file='tr.txt')
    with pytest.raises(TrainDataError, match='tr.txt'):
        check_train_data(cfg)
