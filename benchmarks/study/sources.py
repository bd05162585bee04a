"""Reading the study's data sets into memory (ZIP packs or folders).

Imagenette from ``imagenette64.zip`` (read with :mod:`zipfile`, not
extracted) or the ``imagenette128`` folder, CamVid from ``camvid240.zip`` or
the ``camvid`` folder. Images are decoded once into uint8 BGR arrays (the
channel order of MMCV's ``LoadImageFromFile``, so the configs' pipelines
and ``to_rgb`` preprocessors apply unchanged).
"""
import io
import os
import os.path as osp
import zipfile
from concurrent.futures import ThreadPoolExecutor
from typing import List, Optional, Sequence, Tuple

import numpy as np

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))

MEAN = [123.675, 116.28, 103.53]  # RGB, 0-255
STD = [58.395, 57.12, 57.375]
NUM_CLASSES = 10
SEG_CLASSES = 11
IGNORE = 255


def shared_dir() -> str:
    return os.environ.get('FOLK_SHARED', osp.join(osp.dirname(REPO), 'shared'))


def find_source(arg: Optional[str], names: Sequence[str]) -> str:
    """``arg`` if given, else the first existing candidate path."""
    if arg and arg != 'auto':
        if not osp.exists(arg):
            raise FileNotFoundError(f'data not found: {arg}')
        return arg
    roots = [
        osp.join(REPO, 'data'),
        osp.join(REPO, 'data', 'packs'),
        osp.join(shared_dir(), 'data', 'packs'),
        osp.join(shared_dir(), 'data')
    ]
    tried = []
    for name in names:
        for root in roots:
            path = osp.join(root, name)
            tried.append(path)
            if osp.exists(path):
                return path
    raise FileNotFoundError('no data found; tried:\n  ' + '\n  '.join(tried) +
                            '\n(pass --data / --camvid or set FOLK_SHARED)')


class Source:
    """Read the files of a data set from a ZIP pack or a folder."""

    def __init__(self, path: str, marker: str) -> None:
        self.path = path
        self.zip = None
        if zipfile.is_zipfile(path):
            self.zip = zipfile.ZipFile(path)
            hits = [
                n for n in self.zip.namelist()
                if n == marker or n.endswith('/' + marker)
            ]
            if not hits:
                raise FileNotFoundError(f'{marker} not found in {path}')
            self.prefix = hits[0][:-len(marker)]
        else:
            if not osp.exists(osp.join(path, marker)):
                raise FileNotFoundError(f'{marker} not found in {path}')
            self.prefix = ''

    def read(self, name: str) -> bytes:
        if self.zip is not None:
            return self.zip.read(self.prefix + name)
        with open(osp.join(self.path, name), 'rb') as f:
            return f.read()

    def text(self, name: str) -> List[str]:
        return [
            ln.strip() for ln in self.read(name).decode().splitlines()
            if ln.strip()
        ]


def _decode(data: bytes, size: Tuple[int, int], label: bool) -> np.ndarray:
    from PIL import Image
    img = Image.open(io.BytesIO(data))
    if label:  # label map: nearest neighbour, values kept
        if img.size != size:
            img = img.resize(size, Image.NEAREST)
        return np.asarray(img)
    img = img.convert('RGB')
    if img.size != size:
        img = img.resize(size, Image.BICUBIC)
    return np.ascontiguousarray(np.asarray(img)[..., ::-1])  # BGR


def decode_all(blobs: List[bytes],
               size: Tuple[int, int],
               label: bool = False) -> np.ndarray:
    """Decode images (BGR) or label maps, resized to ``size`` (W, H)."""
    workers = max(1, min(4, os.cpu_count() or 1))
    with ThreadPoolExecutor(workers) as pool:
        arrays = list(pool.map(lambda b: _decode(b, size, label), blobs))
    return np.stack(arrays)


def balanced_subset(labels: np.ndarray,
                    limit: Optional[int],
                    seed: int = 0) -> np.ndarray:
    """Sorted indices of a class-balanced subset of ``limit`` items."""
    if limit is None or limit >= len(labels):
        return np.arange(len(labels))
    rng = np.random.default_rng(seed)
    per = max(1, limit // len(np.unique(labels)))
    out = [
        rng.permutation(np.flatnonzero(labels == c))[:per]
        for c in np.unique(labels)
    ]
    return np.sort(np.concatenate(out))


def load_imagenette(path: str, size: int, train_limit: Optional[int],
                    val_limit: Optional[int]) -> dict:
    """Imagenette train / val as uint8 BGR (N, size, size, 3) + labels."""
    src = Source(path, 'train.txt')
    out = dict(source=path, size=size)
    for split, limit in (('train', train_limit), ('val', val_limit)):
        items = [ln.rsplit(maxsplit=1) for ln in src.text(f'{split}.txt')]
        labels = np.array([int(c) for _, c in items])
        keep = balanced_subset(labels, limit)
        paths = [items[i][0] for i in keep]
        imgs = decode_all([src.read(p) for p in paths], (size, size))
        out[split] = dict(images=imgs, labels=labels[keep], paths=paths)
    return out


def load_camvid(path: str, size: Tuple[int, int], train_limit: Optional[int],
                val_limit: Optional[int]) -> dict:
    """CamVid train / val: uint8 BGR images and label maps (255 ignored)."""
    src = Source(path, 'train.txt')
    out = dict(source=path, size=tuple(size))
    for split, limit in (('train', train_limit), ('val', val_limit)):
        names = src.text(f'{split}.txt')[:limit]
        imgs = decode_all([src.read(f'images/{split}/{n}.jpg') for n in names],
                          tuple(size))
        lbls = decode_all(
            [src.read(f'annotations/{split}/{n}.png') for n in names],
            tuple(size),
            label=True)
        lbls = np.where(lbls < SEG_CLASSES, lbls, IGNORE).astype(np.uint8)
        out[split] = dict(images=imgs, labels=lbls)
    return out


def fewshot_indices(paths: Sequence[str],
                    labels: np.ndarray,
                    ratio: float,
                    seed: int = 0) -> np.ndarray:
    """The 10 % subset of ``tools/make_fewshot_split.py`` (its function)."""
    import importlib.util
    spec = importlib.util.spec_from_file_location(
        'make_fewshot_split', osp.join(REPO, 'tools', 'make_fewshot_split.py'))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    items = [(p, int(c)) for p, c in zip(paths, labels)]
    chosen = set(
        p for p, _ in module.fewshot_subset(items, ratio=ratio, seed=seed))
    return np.array([i for i, p in enumerate(paths) if p in chosen])


def load_data(p: dict, data_arg: str = 'auto') -> dict:
    """Imagenette at ``source_size`` (the images the pre-training and
    fine-tuning crops are taken from, and the evaluation images)."""
    names = ['imagenette64.zip', 'imagenette128'] \
        if max(p['img_size'], p['source_size']) <= 64 \
        else ['imagenette128', 'imagenette64.zip']
    path = find_source(data_arg, names)
    data = load_imagenette(path, p['source_size'], p['train_limit'],
                           p['val_limit'])
    data['source_train'] = data['train']
    return data


def load_camvid_preset(p: dict, camvid_arg: str = 'auto') -> dict:
    """CamVid at the preset's ``seg_size`` and limits."""
    path = find_source(camvid_arg, ['camvid240.zip', 'camvid'])
    return load_camvid(path, tuple(p['seg_size']), p['seg_train_limit'],
                       p['seg_val_limit'])
