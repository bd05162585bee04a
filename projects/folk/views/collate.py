"""The collate function of FOLK's pre-training batches.

A batch leaves the data workers as one uint8 tensor and one small array per
kind of parameter, instead of one tensor per image (and one label tensor per
image that pre-training never uses): the main process receives one
shared-memory tensor per batch and the per-sample parameters arrive as
arrays, without per-sample metainfo. Registered as ``folk_views_collate``::

    train_dataloader = dict(collate_fn=dict(type='folk_views_collate'))
"""
from typing import Dict, List, Sequence

import numpy as np
import torch
from mmengine.registry import FUNCTIONS

from .crop import pack_rows
from .recipe import crop_array, photometric_array

#: Keys of the ``data_samples`` dict of a collated batch.
BATCH_KEYS = (
    'shapes',  # (B, 3) int64 (C, H, W) of the images (crop='device')
    'crop',  # (V, B, 6) int64 crop parameters (crop='device'), or None
    'photometric',  # (V, B, 12) float64 (photometric='device'), or None
    'freq_kind',  # (V, B) str filter kinds
    'freq_param',  # (V, B) float64 filter ratios / radii
    'freq_keep',  # (V, B, H, W) bool keep masks (apply=True), or None
)


def _meta(sample, key: str, index: int):
    """The metainfo ``key`` of sample ``index`` (None if absent)."""
    ds = sample.get('data_samples')
    if ds is None or key not in ds:
        return None
    return ds.get(key)


def _per_view(samples: Sequence[dict], key: str, array_fn) -> np.ndarray:
    """(V, B, ...) array of a per-view metainfo list, or None."""
    values = [_meta(s, key, i) for i, s in enumerate(samples)]
    present = [v is not None for v in values]
    if not any(present):
        return None
    if not all(present):
        raise KeyError(f'folk_views_collate: "{key}" is missing from data '
                       f'sample {present.index(False)} but present in '
                       'others')
    num_views = len(values[0])
    for i, v in enumerate(values):
        if len(v) != num_views:
            raise ValueError(f'folk_views_collate: data sample {i} has '
                             f'{len(v)} "{key}" entries, sample 0 has '
                             f'{num_views}')
    return np.stack([
        array_fn([values[b][v] for b in range(len(values))])
        for v in range(num_views)
    ])


def collate_params(data_batch: Sequence[dict]) -> Dict:
    """The parameter arrays of a batch of packed samples (the
    ``data_samples`` of :func:`folk_views_collate`, without ``shapes``)."""
    crops = _per_view(data_batch, 'crop_params', crop_array)
    photometric = _per_view(
        data_batch, 'photometric_params',
        lambda ps: photometric_array(ps, where='photometric_params'))
    kinds = _per_view(data_batch, 'freq_kind', np.asarray)
    if kinds is None:
        raise KeyError(
            'folk_views_collate needs "freq_kind" and "freq_param" in the '
            'data samples: add RandomFrequencyFilter to the pipeline and '
            'pack them with PackInputs(meta_keys=[..., "freq_kind", '
            '"freq_param"])')
    params = _per_view(data_batch, 'freq_param',
                       lambda v: np.asarray(v, np.float64))
    keep = None
    if _meta(data_batch[0], 'freq_keep', 0) is not None:
        keep = np.stack([
            np.asarray(_meta(s, 'freq_keep', i), bool)
            for i, s in enumerate(data_batch)
        ], 1)
    return dict(
        shapes=None,
        crop=crops,
        photometric=photometric,
        freq_kind=kinds,
        freq_param=params,
        freq_keep=keep)


@FUNCTIONS.register_module()
def folk_views_collate(data_batch: Sequence[dict]) -> Dict:
    """Collate FOLK / MFM pre-training samples (packed by ``PackInputs``).

    With ``FOLKViews(crop='device')`` every sample's ``inputs`` is its
    decoded (3, H, W) image: the batch's images become one uint8 matrix of
    rows (:func:`folk.views.crop.pack_rows`). Otherwise ``inputs`` holds the
    sample's V cut views, each (3, S, S): they become one (V * B, 3, S, S)
    uint8 tensor, view-major. Labels and other metainfo are dropped.

    Returns:
        dict: ``inputs`` (the one uint8 tensor) and ``data_samples``, a dict
        of numpy arrays (:data:`BATCH_KEYS`), view-major ``[view, sample]``.
    """
    if len(data_batch) == 0:
        raise ValueError('folk_views_collate: empty batch')
    params = collate_params(data_batch)
    crops = params['crop']
    inputs = [s['inputs'] for s in data_batch]
    shapes = None
    if crops is not None:
        if not all(
                isinstance(x, torch.Tensor) and x.dim() == 3 for x in inputs):
            raise ValueError(
                "folk_views_collate: with FOLKViews(crop='device') every "
                'sample\'s inputs must be its decoded (3, H, W) image')
        rows, shapes = pack_rows(inputs, hwc=False)
    else:
        views: List[torch.Tensor] = []
        per_sample = [
            list(x) if isinstance(x, (list, tuple)) else [x] for x in inputs
        ]
        num_views = len(per_sample[0])
        if any(len(v) != num_views for v in per_sample):
            raise ValueError('folk_views_collate: the samples have different '
                             'numbers of views')
        for v in range(num_views):
            views += [s[v] for s in per_sample]
        try:
            rows = torch.stack(views)
        except RuntimeError as err:
            raise ValueError(
                'folk_views_collate: the views of a batch must share one '
                f'shape, got {sorted({tuple(x.shape) for x in views})}'
            ) from err
    params['shapes'] = shapes
    return dict(inputs=rows, data_samples=params)


__all__ = ['BATCH_KEYS', 'collate_params', 'folk_views_collate']
