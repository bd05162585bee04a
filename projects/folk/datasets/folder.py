"""A folder of unlabelled images as a pre-training set, and its checks.

- :class:`ImageFolderDataset`: every image file under a folder (flat or
  nested, any depth, no labels, no class sub-folders), through MMPretrain's
  :class:`~mmpretrain.datasets.CustomDataset` with ``with_label=False``.
- :func:`check_train_data`: run before the model is built; a training set
  whose folder is missing, empty or holds no readable image stops with one
  message naming the path, the layout expected, ``docs/custom_data.md`` and
  the custom-folder config (:class:`TrainDataError`).
"""
import os
import os.path as osp
from typing import Iterator, List, Optional, Sequence

import cv2
import numpy as np
from mmengine.logging import print_log
from mmpretrain.datasets import CustomDataset
from mmpretrain.registry import DATASETS

#: file name endings listed as images (compared in lower case)
IMAGE_EXTENSIONS = ('.jpg', '.jpeg', '.png', '.bmp', '.ppm', '.pgm', '.pbm',
                    '.tif', '.tiff', '.webp')
CUSTOM_CONFIG = ('configs/folk/'
                 'folk_vit-base-p16_8xb128-amp-coslr-300e_custom.py')
DEMO_CUSTOM_CONFIG = 'configs/demo/folk_vit-tiny-p8_1xb32-200i_custom.py'
DOCS = 'docs/custom_data.md#folder-layout'


class TrainDataError(FileNotFoundError):
    """The training data of a config cannot be used; the message says why."""


def iter_images(root: str,
                extensions: Sequence[str] = IMAGE_EXTENSIONS) -> Iterator[str]:
    """Paths of the image files under ``root``, relative to it, as found.

    Hidden files and folders (a name starting with ``.``, e.g. macOS's
    ``._x.jpg`` resource forks) are left out; symbolic links to folders are
    followed.
    """
    ext = tuple(e.lower() for e in extensions)
    for dirpath, dirnames, filenames in os.walk(root, followlinks=True):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith('.'))
        rel_dir = osp.relpath(dirpath, root)
        for name in sorted(filenames):
            if name.startswith('.') or not name.lower().endswith(ext):
                continue
            yield osp.normpath(osp.join(rel_dir, name))


def list_images(root: str,
                extensions: Sequence[str] = IMAGE_EXTENSIONS) -> List[str]:
    """:func:`iter_images`, sorted."""
    return sorted(iter_images(root, extensions))


def _layout_help(config_hint: bool = True) -> str:
    text = ('FOLK pre-trains on a folder of images, flat or nested, without '
            'labels or class sub-folders (DIR/a.jpg, DIR/any/depth/b.png, '
            f'...; {", ".join(IMAGE_EXTENSIONS)}); see {DOCS}.')
    if config_hint:
        text += (f' For your own images use {CUSTOM_CONFIG} (or, at demo '
                 f'scale on CPU, {DEMO_CUSTOM_CONFIG}) with --cfg-options '
                 'train_dataloader.dataset.data_root=DIR.')
    return text


@DATASETS.register_module()
class ImageFolderDataset(CustomDataset):
    """Every image under a folder, without labels.

    The folder may be flat or nested to any depth; sub-folder names carry
    no meaning (no classes). Files are listed in sorted order; hidden files
    and folders are skipped. Whether a file decodes is decided when it is
    loaded (``LoadImageFromFileSafe``'s ``on_error`` policy); a folder
    without any image file is an error naming the folder.

    Args:
        data_root (str): The folder.
        data_prefix (str): Sub-folder of ``data_root`` to list.
            Defaults to ''.
        extensions (Sequence[str]): File name endings listed as images.
            Defaults to :data:`IMAGE_EXTENSIONS`.
        **kwargs: Other arguments of
            :class:`~mmpretrain.datasets.CustomDataset` (``pipeline``,
            ``indices``, ``serialize_data``, ...), except ``ann_file`` and
            ``with_label``.
    """

    def __init__(self,
                 data_root: str = '',
                 data_prefix: str = '',
                 extensions: Sequence[str] = IMAGE_EXTENSIONS,
                 **kwargs) -> None:
        for key in ('ann_file', 'with_label'):
            if key in kwargs:
                raise TypeError(f'ImageFolderDataset lists the images of a '
                                f'folder; it takes no {key!r}')
        if not data_root and not data_prefix:
            raise TrainDataError('ImageFolderDataset: data_root is empty. ' +
                                 _layout_help())
        super().__init__(
            data_root=data_root,
            data_prefix=data_prefix,
            ann_file='',
            with_label=False,
            extensions=extensions,
            **kwargs)

    def load_data_list(self):
        """``[{'img_path': ...}, ...]`` of the images under the folder."""
        root = self.img_prefix
        if not osp.isdir(root):
            raise TrainDataError(
                f'ImageFolderDataset: the folder {root!r} does not exist '
                'or is not a folder. ' + _layout_help())
        files = list_images(root, self.extensions)
        if not files:
            raise TrainDataError(
                f'ImageFolderDataset: no image file under {root!r}. ' +
                _layout_help())
        print_log(
            f'ImageFolderDataset: {len(files)} image files under {root!r}',
            logger='current')
        return [dict(img_path=osp.join(root, f)) for f in files]


def _readable(path: str) -> bool:
    try:
        data = np.fromfile(path, np.uint8)
    except OSError:
        return False
    if data.size == 0:
        return False
    try:
        return cv2.imdecode(data, cv2.IMREAD_COLOR) is not None
    except cv2.error:
        return False


def _folder(dataset: dict) -> Optional[str]:
    root = dataset.get('data_root', '') or ''
    prefix = dataset.get('data_prefix', '') or ''
    if isinstance(prefix, dict):
        prefix = prefix.get('img_path', '') or ''
    return osp.join(root, prefix) if (root or prefix) else None


def check_train_data(cfg, max_probe: int = 1000) -> None:
    """Check the training set's folder before anything is built.

    For an :class:`ImageFolderDataset` the folder must exist and hold at
    least one image that decodes (files are tried in listing order, at
    most ``max_probe`` of them). For the other folder-based data sets
    (``ImageNet``, ``CustomDataset``, ...) the folder and, when given, the
    annotation file must exist. Data sets that do not read a local folder
    (a remote ``backend_args``, wrappers) are left to the data set itself.

    Args:
        cfg (Config | dict): A training config.
        max_probe (int): Image files tried for one that decodes.

    Raises:
        TrainDataError: One message naming the path, the layout expected,
            ``docs/custom_data.md`` and the custom-folder config.
    """
    loader = cfg.get('train_dataloader') or {}
    dataset = loader.get('dataset') or {}
    if not isinstance(dataset, dict) or dataset.get('backend_args'):
        return
    kind = dataset.get('type')
    folder = _folder(dataset)
    if folder is None or (isinstance(kind, str) and kind.endswith('Wrapper')):
        return
    if folder.startswith(('s3:', 'http:', 'https:', 'petrel:')):
        return
    where = f'train_dataloader.dataset.data_root of the config ({kind})'
    if not osp.isdir(folder):
        raise TrainDataError(
            f'the training data folder {folder!r} does not exist ({where}). ' +
            _layout_help())
    if kind in ('ImageFolderDataset', ImageFolderDataset):
        extensions = dataset.get('extensions', IMAGE_EXTENSIONS)
        tried = 0
        for rel in iter_images(folder, extensions):
            if _readable(osp.join(folder, rel)):
                return
            tried += 1
            if tried >= max_probe:
                break
        if tried == 0:
            raise TrainDataError(
                f'the training data folder {folder!r} holds no image file '
                f'({where}). ' + _layout_help())
        raise TrainDataError(
            f'the training data folder {folder!r}: none of the first '
            f'{tried} image files decodes ({where}). ' + _layout_help())
    ann_file = dataset.get('ann_file')
    if ann_file:
        path = ann_file if osp.isabs(ann_file) else osp.join(
            dataset.get('data_root', '') or '', ann_file)
        if not osp.isfile(path):
            raise TrainDataError(
                f'the annotation file {path!r} of the training data does not'
                f' exist ({where}). ' + _layout_help())
        return
    if not os.listdir(folder):
        raise TrainDataError(
            f'the training data folder {folder!r} is empty ({where}). ' +
            _layout_help())


__all__ = [
    'IMAGE_EXTENSIONS', 'ImageFolderDataset', 'TrainDataError',
    'check_train_data', 'iter_images', 'list_images'
]
