"""Decoded images served to MMEngine as an MMPretrain data set."""
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
from mmengine.dataset import BaseDataset
from mmpretrain.registry import DATASETS
from sources import NUM_CLASSES

_ARRAYS: Dict[str, Tuple[np.ndarray, Optional[np.ndarray]]] = {}


def register_arrays(key: str,
                    images: np.ndarray,
                    labels: Optional[np.ndarray] = None) -> str:
    """Make ``images`` (N, H, W, 3) uint8 BGR available to
    :class:`ArrayDataset` under ``key``; returns ``key``."""
    if images.ndim != 4 or images.shape[-1] != 3 or \
            images.dtype != np.uint8:
        raise ValueError(f'register_arrays({key!r}): need (N, H, W, 3) '
                         f'uint8, got {images.shape} {images.dtype}')
    _ARRAYS[key] = (images, labels)
    return key


@DATASETS.register_module(force=True)
class ArrayDataset(BaseDataset):
    """Decoded images held in memory, served like ``CustomDataset``.

    Every sample has ``img`` (an (H, W, 3) uint8 BGR array, as MMCV's
    ``LoadImageFromFile`` returns), ``img_shape``, ``ori_shape``,
    ``sample_idx`` and, with labels, ``gt_label``: the pipeline starts
    after loading. The arrays are registered with :func:`register_arrays`
    (configs hold the key, not the data).

    Args:
        key (str): Name given to :func:`register_arrays`.
        indices (Sequence[int], optional): Use only these images.
        pipeline (list): Transforms.
    """

    METAINFO = dict(classes=tuple(str(i) for i in range(NUM_CLASSES)))

    def __init__(self,
                 key: str,
                 indices: Optional[Sequence[int]] = None,
                 pipeline: Sequence = (),
                 **kwargs) -> None:
        if key not in _ARRAYS:
            raise KeyError(f'ArrayDataset: no arrays registered as {key!r} '
                           f'(known: {sorted(_ARRAYS)})')
        self.key = key
        self.indices = None if indices is None else [int(i) for i in indices]
        super().__init__(
            ann_file='',
            pipeline=list(pipeline),
            serialize_data=False,
            **kwargs)

    def load_data_list(self) -> List[dict]:
        images, labels = _ARRAYS[self.key]
        idx = range(len(images)) if self.indices is None else self.indices
        out = []
        for i in idx:
            item = dict(img_index=i)
            if labels is not None:
                item['gt_label'] = int(labels[i])
            out.append(item)
        return out

    def get_data_info(self, idx: int) -> dict:
        info = super().get_data_info(idx)
        img = _ARRAYS[self.key][0][info['img_index']]
        info['img'] = img
        info['img_shape'] = info['ori_shape'] = img.shape[:2]
        return info

    def get_gt_labels(self) -> np.ndarray:
        return np.array([d['gt_label'] for d in self.data_list])


def eval_pipeline(img_size: int) -> List[dict]:
    """Resize the short edge to ``img_size / 0.875`` and centre-crop, as
    the configs' evaluation pipelines (224 / 256)."""
    return [
        dict(
            type='ResizeEdge',
            scale=round(img_size / 0.875),
            edge='short',
            backend='pillow',
            interpolation='bicubic'),
        dict(type='CenterCrop', crop_size=img_size),
        dict(type='PackInputs'),
    ]
