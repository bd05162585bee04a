"""Batched photometric augmentation and frequency filtering on the model's
device."""
from typing import Dict, List, Optional

import torch
from mmpretrain.models.utils.data_preprocessor import SelfSupDataPreprocessor
from mmpretrain.registry import MODELS

from ..crop import resized_crops
from ..frequency import apply_frequency_mask, filter_images, kind_to_index
from ..photometric import apply_photometric, params_from_samples


@MODELS.register_module()
class FrequencyFilterPreprocessor(SelfSupDataPreprocessor):
    """Augment and normalise the views and build their frequency-filtered
    copies.

    In training, when the data samples carry ``crop_params``
    (``FOLKViews(crop='device')``, packed as a meta key), ``inputs`` holds
    each decoded image once (a list of (3, H, W) uint8 tensors from
    ``pseudo_collate``, or one stacked tensor when the sizes agree) and the
    views are first cut from it here (:func:`folk.crop.resized_crops`,
    Pillow's bicubic arithmetic, so the views are those of the CPU crop).
    When the data samples carry ``photometric_params``
    (``FOLKViews(photometric='device')``, packed as a meta key), the views
    first get their photometric augmentation here, all views of the batch in
    one call of :func:`folk.photometric.apply_photometric` on uint8 BGR (the
    pipeline's channel order), which gives the images of the CPU path.
    Then each view ``x`` is converted to [0, 1], filtered in one batched
    call with the
    filter chosen for it by :class:`RandomFrequencyFilter` (``freq_kind`` /
    ``freq_param`` in the data samples' metainfo), and both the unfiltered
    and the filtered view are normalised. FFTs run in float32. If the
    pipeline already computed keep masks (``freq_keep``, ``apply=True``),
    they are used instead of being recomputed.

    Outside training the behaviour of :class:`SelfSupDataPreprocessor` is
    kept (normalisation only).

    The training output ``inputs`` is a dict of lists with one entry per
    view:

    - ``views``: normalised unfiltered views, each (B, 3, H, W).
    - ``filtered``: normalised filtered views, each (B, 3, H, W).
    - ``keep``: keep masks, each (B, H, W) bool, unshifted FFT layout.

    Args: as :class:`mmpretrain.models.SelfSupDataPreprocessor`.
    """

    def forward(self, data: dict, training: bool = False) -> Dict:
        """Filter and normalise a batch (see the class docstring)."""
        if not training:
            return super().forward(data, training)
        data = self.cast_data(data)
        # MMEngine calls the preprocessor inside the optim wrapper's
        # autocast: crops, photometric augmentation and filters are exact
        # uint8 / float32 arithmetic (a bf16 blur wraps 255 to 0)
        with torch.autocast(torch.device(self._device).type, enabled=False):
            return self._forward_train(data)

    def _forward_train(self, data: dict) -> Dict:
        """The training branch of :meth:`forward`, on cast data."""
        views = data['inputs']
        samples = data['data_samples']
        crops = params_from_samples(samples, 'crop_params')
        if crops is not None:
            views = self._cut(views, crops)
        elif not isinstance(views, list):
            views = [views]
        if samples is None or 'freq_kind' not in samples[0]:
            raise KeyError(
                'FrequencyFilterPreprocessor needs "freq_kind" and '
                '"freq_param" in the data samples: add RandomFrequencyFilter '
                'to the pipeline and pack them with PackInputs(meta_keys='
                '[..., "freq_kind", "freq_param"]).')
        photometric = params_from_samples(samples)
        if photometric is not None:
            views = self._augment(views, photometric, samples)
        out: Dict[str, List[torch.Tensor]] = dict(
            views=[], filtered=[], keep=[])
        for i, view in enumerate(views):
            if self._channel_conversion:
                view = view[:, [2, 1, 0], ...]
            x = view.float() / 255.  # (B, 3, H, W) in [0, 1]
            kind = kind_to_index([s.freq_kind[i] for s in samples])  # (B,)
            param = torch.tensor([s.freq_param[i] for s in samples])  # (B,)
            keep = self._precomputed_keep(samples, i, x.device)
            if keep is None:
                filtered, keep = filter_images(x, kind, param)
            else:
                filtered = apply_frequency_mask(x, keep)
            out['views'].append(self._normalize(x))
            out['filtered'].append(self._normalize(filtered))
            out['keep'].append(keep)
        return dict(inputs=out, data_samples=samples)

    @staticmethod
    def _cut(images, crops: List[List[dict]]) -> List[torch.Tensor]:
        """The views (each (B, 3, S, S) uint8) cut from the decoded images
        (a list of B (3, H, W) tensors, or one (B, 3, H, W) tensor)."""
        if len(images) != len(crops[0]) or not all(
                isinstance(img, torch.Tensor) and img.dim() == 3
                for img in images):
            raise ValueError(
                'FrequencyFilterPreprocessor: with crop_params (FOLKViews('
                "crop='device')) the inputs must be one (3, H, W) image per "
                f'data sample ({len(crops[0])}); got '
                f'{type(images).__name__} of {len(images)}. Collate with '
                "pseudo_collate (collate_fn=dict(type='pseudo_collate'))")
        return [resized_crops(images, per_view) for per_view in crops]

    @staticmethod
    def _augment(views: List[torch.Tensor], params: List[List[dict]],
                 samples) -> List[torch.Tensor]:
        """Photometric augmentation of all views in one batched call."""
        if len(params) != len(views):
            raise ValueError(
                f'FrequencyFilterPreprocessor: the data samples carry '
                f'photometric_params for {len(params)} views, the batch '
                f'has {len(views)}')
        if 'freq_keep' in samples[0]:
            raise ValueError(
                'FrequencyFilterPreprocessor: freq_keep was computed in the '
                'pipeline before the photometric augmentation that runs '
                "here; use FOLKViews(photometric='cpu') with "
                'RandomFrequencyFilter(apply=True)')
        batch = views[0].shape[0]
        flat = [p for per_view in params for p in per_view]
        x = apply_photometric(torch.cat(views), flat)  # (V * B, 3, H, W)
        return list(x.split(batch))

    def _normalize(self, x01: torch.Tensor) -> torch.Tensor:
        """Normalise a [0, 1] image with the 0-255 ``mean`` / ``std``."""
        x = x01 * 255.
        if self._enable_normalize:
            x = (x - self.mean) / self.std
        return x

    @staticmethod
    def _precomputed_keep(samples, view: int,
                          device) -> Optional[torch.Tensor]:
        if 'freq_keep' not in samples[0]:
            return None
        keep = [torch.as_tensor(s.freq_keep)[view] for s in samples]
        return torch.stack(keep).to(device=device, dtype=torch.bool)
