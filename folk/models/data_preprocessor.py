"""Batched frequency filtering on the model's device."""
from typing import Dict, List, Optional

import torch

from mmpretrain.models.utils.data_preprocessor import SelfSupDataPreprocessor
from mmpretrain.registry import MODELS
from ..frequency import apply_frequency_mask, filter_images, kind_to_index


@MODELS.register_module()
class FrequencyFilterPreprocessor(SelfSupDataPreprocessor):
    """Normalise the views and build their frequency-filtered copies.

    In training, each view ``x`` (uint8, in the channel order of the data
    pipeline) is converted to [0, 1], filtered in one batched call with the
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
        views = data['inputs']
        samples = data['data_samples']
        if not isinstance(views, list):
            views = [views]
        if samples is None or 'freq_kind' not in samples[0]:
            raise KeyError(
                'FrequencyFilterPreprocessor needs "freq_kind" and '
                '"freq_param" in the data samples: add RandomFrequencyFilter '
                'to the pipeline and pack them with PackInputs(meta_keys='
                '[..., "freq_kind", "freq_param"]).')
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
