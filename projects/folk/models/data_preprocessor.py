"""The views of FOLK / MFM cut, augmented, filtered and normalised on the
model's device."""
from typing import Dict, Optional, Sequence

import numpy as np
import torch
from mmpretrain.models.utils.data_preprocessor import SelfSupDataPreprocessor
from mmpretrain.registry import MODELS

from ..frequency import apply_frequency_mask, filter_images, kind_to_index
from ..views.collate import collate_params
from ..views.crop import crop_plan, crop_rows, pack_rows
from ..views.photometric import (check_photometric_array, device_consts,
                                 photometric_plan, photometric_run)
from ..views.transfer import HostPack, autocast_off


@MODELS.register_module()
class FrequencyFilterPreprocessor(SelfSupDataPreprocessor):
    """Cut, augment and normalise the views and build their
    frequency-filtered copies.

    In training the batch comes from ``folk_views_collate``
    (:func:`folk.views.collate.folk_views_collate`): one uint8 tensor and
    one parameter array per kind. Batches of packed data samples
    (``default_collate`` / ``pseudo_collate``) are accepted too and brought
    into that form first. All views of the batch are processed together,
    outside autocast (the blur and the filter need exact float32 / float64
    arithmetic, and MMEngine runs the preprocessor inside the optimizer
    wrapper's autocast context):

    1. with crop parameters (``FOLKViews(crop='device')``) the views are cut
       from the decoded images, Pillow's bicubic arithmetic
       (:func:`folk.views.crop.crop_rows`);
    2. with photometric parameters (``FOLKViews(photometric='device')``)
       they get DINO's photometric augmentation on uint8 BGR
       (:func:`folk.views.photometric.photometric_run`), which gives the
       images of the CPU path;
    3. every view ``x`` is converted to [0, 1] (RGB with ``to_rgb``),
       filtered with the filter chosen for it by
       :class:`folk.datasets.RandomFrequencyFilter` (FFTs in float32; the
       pipeline's keep masks when it computed them, ``apply=True``), and
       the unfiltered and filtered views are normalised.

    The host plans everything first and all per-step parameters reach the
    device in one non-blocking copy (:class:`folk.views.transfer.HostPack`).

    Outside training the behaviour of :class:`SelfSupDataPreprocessor` is
    kept (normalisation only).

    The training output ``inputs`` is a dict of lists with one entry per
    view, each a chunk of one stacked (V * B, ...) tensor:

    - ``views``: normalised unfiltered views, each (B, 3, H, W).
    - ``filtered``: normalised filtered views, each (B, 3, H, W).
    - ``keep``: keep masks, each (B, H, W) bool, unshifted FFT layout.

    Args: as :class:`mmpretrain.models.SelfSupDataPreprocessor`.
    """

    _affine: dict = {}

    def forward(self, data: dict, training: bool = False) -> Dict:
        """Cut, augment, filter and normalise a batch (see the class
        docstring)."""
        if not training:
            return super().forward(data, training)
        samples = data.get('data_samples')
        if isinstance(samples, dict):
            params, inputs, out_samples = samples, data['inputs'], samples
        else:
            params, inputs = self._from_samples(data['inputs'], samples)
            out_samples = samples
        with autocast_off(self._device):
            inputs = self.cast_data(inputs)
            out = self._views(inputs, params)
        return dict(inputs=out, data_samples=out_samples)

    @staticmethod
    def _from_samples(inputs, samples: Optional[Sequence]):
        """Arrays of ``folk_views_collate`` from a batch of packed data
        samples (``default_collate`` / ``pseudo_collate``)."""
        if not samples or 'freq_kind' not in samples[0]:
            raise KeyError(
                'FrequencyFilterPreprocessor needs "freq_kind" and '
                '"freq_param" in the data samples: add RandomFrequencyFilter '
                'to the pipeline and pack them with PackInputs(meta_keys='
                '[..., "freq_kind", "freq_param"]).')
        params = collate_params([dict(data_samples=s) for s in samples])
        if params['crop'] is not None:
            if len(inputs) != len(samples) or not all(
                    isinstance(img, torch.Tensor) and img.dim() == 3
                    for img in inputs):
                raise ValueError(
                    'FrequencyFilterPreprocessor: with crop_params (FOLKViews('
                    "crop='device')) the inputs must be one (3, H, W) image "
                    f'per data sample ({len(samples)}); got '
                    f'{type(inputs).__name__} of {len(inputs)}. Collate with '
                    "folk_views_collate (collate_fn=dict(type='folk_views_"
                    "collate')) or pseudo_collate")
            rows, shapes = pack_rows([x.cpu() for x in inputs], hwc=False)
            params['shapes'] = shapes
            return params, rows
        if isinstance(inputs, torch.Tensor):  # one view, stacked
            inputs = [inputs]
        views = [
            v if isinstance(v, torch.Tensor) else torch.stack(list(v))
            for v in inputs
        ]
        return params, torch.cat(views) if len(views) > 1 else views[0]

    def _views(self, inputs: torch.Tensor, params: dict) -> Dict:
        """The training output from the collated tensor and arrays."""
        kinds, fparams = params['freq_kind'], params['freq_param']
        num_views, batch = kinds.shape
        photometric, keep = params.get('photometric'), params.get('freq_keep')
        if photometric is not None and len(photometric) != num_views:
            raise ValueError(
                f'FrequencyFilterPreprocessor: the data samples carry '
                f'photometric_params for {len(photometric)} views, the batch '
                f'has {num_views}')
        if photometric is not None and keep is not None:
            raise ValueError(
                'FrequencyFilterPreprocessor: freq_keep was computed in the '
                'pipeline before the photometric augmentation that runs '
                "here; use FOLKViews(photometric='cpu') with "
                'RandomFrequencyFilter(apply=True)')
        device = inputs.device
        pack = HostPack()
        device_consts(pack)
        crop = params.get('crop')
        if crop is not None:
            if len(crop) != num_views:
                raise ValueError(
                    f'FrequencyFilterPreprocessor: the data samples carry '
                    f'crop_params for {len(crop)} views, the batch has '
                    f'{num_views}')
            source = np.tile(np.arange(batch), num_views)
            size, hmax = crop_plan(params['shapes'], source,
                                   crop.reshape(-1, crop.shape[-1]), pack)
        elif inputs.dim() != 4 or inputs.shape[0] != num_views * batch:
            raise ValueError(
                'FrequencyFilterPreprocessor: expected the V * B = '
                f'{num_views * batch} views stacked, got inputs of shape '
                f'{tuple(inputs.shape)}')
        plan = None
        if photometric is not None:
            photometric = photometric.reshape(-1, photometric.shape[-1])
            check_photometric_array(photometric)
            plan = photometric_plan(photometric, 3, pack)
        dev = pack.to(device)
        x = crop_rows(inputs, dev, size, hmax) if crop is not None else inputs
        if plan is not None:
            x = photometric_run(x, dev, plan)
        if self._channel_conversion:
            x = x.flip(1)
        x01 = torch.div(x, 255.)  # (V * B, 3, S, S) float32 in [0, 1]
        kind = kind_to_index(kinds.reshape(-1).tolist())
        fparam = torch.from_numpy(
            np.ascontiguousarray(fparams.reshape(-1), np.float32))
        if keep is None:
            filtered, keep = filter_images(x01, kind, fparam)
        else:
            keep = torch.from_numpy(keep.reshape(-1, *keep.shape[2:]))
            keep = keep.to(device, non_blocking=True)
            filtered = apply_frequency_mask(x01, keep)
        return dict(
            views=list(self._normalize(x01).chunk(num_views)),
            filtered=list(self._normalize(filtered).chunk(num_views)),
            keep=list(keep.chunk(num_views)))

    def _normalize(self, x01: torch.Tensor) -> torch.Tensor:
        """Normalise a [0, 1] image with the 0-255 ``mean`` / ``std``: one
        fused ``x01 * (255 / std) - mean / std``."""
        if not self._enable_normalize:
            return x01 * 255.
        scale, shift = self._affine.get(self.mean.device, (None, None))
        if scale is None or scale.device != self.mean.device:
            scale, shift = 255. / self.std, -self.mean / self.std
            self._affine = {self.mean.device: (scale, shift)}
        return torch.addcmul(shift, x01, scale)


__all__ = ['FrequencyFilterPreprocessor']
