"""Data-pipeline transforms of FOLK: the two views and the filter choice.

The views' recipe itself lives in :mod:`folk.views.recipe`.
"""
import copy
import difflib
import math
from numbers import Number
from typing import Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
import torch
from mmcv.transforms import BaseTransform, Compose
from mmcv.transforms.utils import cache_randomness
from mmpretrain.registry import TRANSFORMS

from ..frequency import FILTER_KINDS, filter_images
from ..views.recipe import (BLUR_SIGMA_RANGE, CROP_SCALE,
                            apply_photometric_cpu, draw_photometric_params,
                            folk_view_transforms)

_FILTER_KEYS = {
    'com': ('kind', 'ratios', 'prob'),
    'rcom': ('kind', 'ratios', 'prob'),
    'lowpass': ('kind', 'radius', 'prob'),
    'highpass': ('kind', 'radius', 'prob'),
}


def check_filters(filters: Sequence[dict],
                  name: str = 'filters') -> List[dict]:
    """Validate a filter list and return a normalised copy.

    Each entry is ``dict(kind='com' | 'rcom', ratios=(..), prob=p)`` or
    ``dict(kind='lowpass' | 'highpass', radius=r, prob=p)``. Probabilities
    must be positive and sum to 1.

    Raises:
        ValueError: naming the offending entry and key.
    """
    if not isinstance(filters, Sequence) or len(filters) == 0:
        raise ValueError(f'{name} must be a non-empty list of dicts')
    out = []
    for i, f in enumerate(filters):
        where = f'{name}[{i}]'
        if not isinstance(f, dict) or 'kind' not in f:
            raise ValueError(f'{where} must be a dict with a "kind" key, got '
                             f'{f!r}')
        kind = f['kind']
        if kind not in FILTER_KINDS:
            raise ValueError(f'{where}.kind must be one of {FILTER_KINDS}, '
                             f'got {kind!r}')
        unknown = set(f) - set(_FILTER_KEYS[kind])
        if unknown:
            hints = ''.join(
                f' (did you mean {close[0]!r} for {key!r}?)'
                for key in sorted(unknown) for close in
                [difflib.get_close_matches(key, _FILTER_KEYS[kind], 1)]
                if close)
            raise ValueError(f'{where} has unknown key(s) {sorted(unknown)} '
                             f'for kind {kind!r}; allowed: '
                             f'{list(_FILTER_KEYS[kind])}{hints}')
        prob = f.get('prob', None)
        if not isinstance(prob, Number) or prob <= 0:
            raise ValueError(
                f'{where}.prob must be a number > 0, got {prob!r}')
        g = dict(kind=kind, prob=float(prob))
        if kind in ('com', 'rcom'):
            ratios = f.get('ratios', None)
            if isinstance(ratios, Number):
                ratios = (ratios, )
            if (not isinstance(ratios, Sequence) or len(ratios) == 0
                    or not all(
                        isinstance(r, Number) and 0 < r <= 1 for r in ratios)):
                raise ValueError(f'{where}.ratios must be a non-empty list of '
                                 f'numbers in (0, 1], got {ratios!r}')
            g['ratios'] = tuple(float(r) for r in ratios)
        else:
            radius = f.get('radius', None)
            if not isinstance(radius, Number) or radius <= 0:
                raise ValueError(f'{where}.radius must be a number > 0 '
                                 f'(frequency bins), got {radius!r}')
            g['radius'] = float(radius)
        out.append(g)
    total = sum(g['prob'] for g in out)
    if not math.isclose(total, 1.0, abs_tol=1e-6):
        raise ValueError(f'the probabilities of {name} must sum to 1, got '
                         f'{total:.6g}')
    return out


@TRANSFORMS.register_module()
class RandomFrequencyFilter(BaseTransform):
    """Pick a frequency filter for every view of an image.

    Each view independently draws a filter from ``filters`` with the given
    probabilities, then a ratio uniformly from that filter's ``ratios``
    (Com/RCom) or its fixed ``radius`` (low/high-pass). By default only the
    choice is recorded and the batched filter runs on the model's device in
    :class:`FrequencyFilterPreprocessor`. With ``apply=True`` the filter also
    runs here, on CPU, for inspection or CPU-only use; the preprocessor then
    uses the keep masks computed here and produces the same filtered images.

    **Required Keys:**

    - img (np.ndarray | list[np.ndarray]): one view (H, W, 3) or a list of
      views, uint8, as produced by :class:`mmpretrain.MultiView`.
    - crop_params (list[dict], optional): with ``FOLKViews(crop='device')``
      the views are cut later; one filter is drawn per entry.

    **Added Keys:**

    - freq_kind (list[str]): the filter kind of every view.
    - freq_param (list[float]): the ratio or radius of every view.
    - freq_keep (np.ndarray): (V, H, W) bool keep masks, only with
      ``apply=True``.
    - img_filtered (list[np.ndarray]): filtered views (H, W, 3) float32 in
      [0, 255], only with ``apply=True``.

    Pack ``freq_kind`` and ``freq_param`` as meta keys and ``freq_keep`` as
    an algorithm key with :class:`mmpretrain.PackInputs`.

    Args:
        filters (list[dict]): Candidate filters, see :func:`check_filters`.
            Defaults to FOLK's Com / RCom with probability 0.5 each and
            ratios (0.005, 0.01, 0.05).
        apply (bool): Also filter on CPU here. Defaults to False.
    """

    def __init__(self,
                 filters: Optional[Sequence[dict]] = None,
                 apply: bool = False) -> None:
        if filters is None:
            ratios = (0.005, 0.01, 0.05)
            filters = [
                dict(kind='com', ratios=ratios, prob=0.5),
                dict(kind='rcom', ratios=ratios, prob=0.5)
            ]
        self.filters = check_filters(filters)
        self.apply = apply
        self._probs = np.array([f['prob'] for f in self.filters])
        self._probs = self._probs / self._probs.sum()

    @cache_randomness
    def _choose(self, num_views: int) -> List[Tuple[str, float]]:
        choices = []
        for _ in range(num_views):
            f = self.filters[np.random.choice(
                len(self.filters), p=self._probs)]
            if 'ratios' in f:
                param = f['ratios'][np.random.randint(len(f['ratios']))]
            else:
                param = f['radius']
            choices.append((f['kind'], float(param)))
        return choices

    def transform(self, results: Dict) -> Dict:
        """Record (and optionally apply) a filter for every view."""
        views = results['img']
        if not isinstance(views, list):
            views = [views]
        # FOLKViews(crop='device'): one decoded image, the views come later
        num_views = len(results.get('crop_params', views))
        choices = self._choose(num_views)
        results['freq_kind'] = [c[0] for c in choices]
        results['freq_param'] = [c[1] for c in choices]
        if self.apply and 'crop_params' in results:
            raise ValueError(
                'RandomFrequencyFilter(apply=True) filters the views here, '
                "but FOLKViews(crop='device') cuts them later on the device: "
                "use crop='cpu' with apply=True, or apply=False")
        if self.apply and 'photometric_params' in results:
            raise ValueError(
                'RandomFrequencyFilter(apply=True) filters the views here, '
                'but their photometric augmentation runs later on the '
                "device (FOLKViews(photometric='device')): use "
                "photometric='cpu' with apply=True, or apply=False")
        if self.apply:
            keeps, filtered = [], []
            for view, (kind, param) in zip(views, choices):
                if view.ndim != 3 or view.shape[2] != 3:
                    raise ValueError(
                        f'RandomFrequencyFilter needs 3-channel views, got '
                        f'shape {view.shape} for {results.get("img_path")}')
                # (1, 3, H, W) in [0, 1]
                x = torch.from_numpy(np.ascontiguousarray(view)).permute(
                    2, 0, 1)[None].float() / 255.
                out, keep = filter_images(
                    x, torch.tensor([FILTER_KINDS.index(kind)]),
                    torch.tensor([param]))
                keeps.append(keep[0].numpy())
                filtered.append((out[0].permute(1, 2, 0) * 255.).numpy())
            results['freq_keep'] = np.stack(keeps)
            results['img_filtered'] = filtered
        return results

    def __repr__(self) -> str:
        return (f'{self.__class__.__name__}(filters={self.filters}, '
                f'apply={self.apply})')


@TRANSFORMS.register_module()
class FOLKViews(BaseTransform):
    """Two augmented views ``u``, ``v`` of an image, as FOLK uses them.

    Two global crops (MMPretrain's ``RandomResizedCrop``, bicubic, scale
    0.25-1) with flip, and DINO's photometric augmentation: colour jitter
    (p=0.8; brightness 0.4, contrast 0.4, saturation 0.2, hue 0.1, in a
    random order per image), grayscale (p=0.2), Gaussian blur (p=1.0 /
    0.1, radius 0.1-2) and solarisation (p=0 / 0.2). Where the photometric
    part runs is chosen by ``photometric``:

    - ``'device'``: the parameters are drawn here (cheap) and stored in
      ``photometric_params``; pack them as a meta key and
      :class:`FrequencyFilterPreprocessor` applies them batched on the
      model's device (:func:`folk.views.photometric.apply_photometric`). The
      workers only decode, crop, flip and pack uint8 (with
      ``crop='device'`` they only decode and draw).
    - ``'cpu'``: the same parameters are drawn and applied here with MMCV /
      Pillow (:func:`folk.views.recipe.apply_photometric_cpu`), the
      functions MMPretrain's transforms call. With the same seed this gives
      the images of MMPretrain's chain (:func:`folk_view_transforms`), and
      the device path gives them to the level (tested).
    - ``'none'``: crop and flip only (MFM's recipe, with
      ``num_views=1``).

    ``True`` / ``False`` are accepted for ``'cpu'`` / ``'none'``.

    Where the crop, resize and flip run is chosen by ``crop``:

    - ``'cpu'``: here, with MMPretrain's ``RandomResizedCrop`` (Pillow,
      bicubic) and MMCV's ``RandomFlip``; ``img`` becomes the list of views.
    - ``'device'``: only their parameters are drawn here (the same random
      calls, in the same order), stored in ``crop_params``, and ``img`` stays
      the decoded image, passed once for all views; pack ``crop_params`` as
      a meta key, collate with ``folk_views_collate`` (images differ in size),
      and :class:`FrequencyFilterPreprocessor` cuts the views on the model's
      device (:func:`folk.views.crop.crop_rows`, Pillow's arithmetic). Needs
      ``photometric='device'`` or ``'none'``.

    **Required Keys:**

    - img (np.ndarray): (H, W, 3) uint8 image, BGR.

    **Modified Keys:**

    - img (list[np.ndarray]): ``num_views`` views (crop_size, crop_size, 3);
      unchanged with ``crop='device'``.

    **Added Keys:**

    - photometric_params (list[dict]): one parameter dict per view
      (:data:`folk.views.recipe.PARAM_KEYS`), only with ``'device'``.
    - crop_params (list[dict]): one crop parameter dict per view
      (:data:`folk.views.recipe.CROP_KEYS`), only with ``crop='device'``.

    Args:
        crop_size (int): Output size of each view. Defaults to 224.
        crop_scale (tuple[float, float]): Area range of the random crop.
            Defaults to (0.25, 1.0).
        photometric (str | bool): ``'device'``, ``'cpu'`` or ``'none'``.
            Defaults to ``'cpu'``: the transform alone gives augmented
            views; the pre-training configs choose ``'device'``.
        num_views (int): 2 for FOLK, 1 for MFM. Defaults to 2.
        jitter_backend (str): Image backend of MMCV's colour functions on
            the CPU path, ``'cv2'`` (default) or ``'pillow'`` (MMPretrain's
            default, as torchvision). They agree within rounding (brightness
            equal, contrast and saturation within one level, hue within a
            fraction of a level on average; tested); cv2 is about 2.5x
            faster. The device path reproduces cv2, so ``'pillow'`` needs
            ``photometric='cpu'``.
        blur_sigma (tuple[float, float]): Range of the Gaussian blur's
            radius in pixels. DINO's (0.1, 2.0) is meant for 224 px crops;
            scale it with ``crop_size`` for small crops (at 64 px a 2 px
            blur removes most of the image). Defaults to (0.1, 2.0).
        crop (str): ``'cpu'`` (default) or ``'device'``, see above.
    """

    JITTER_BACKENDS = ('cv2', 'pillow')
    PHOTOMETRIC = ('device', 'cpu', 'none')
    CROP = ('cpu', 'device')

    def __init__(self,
                 crop_size: int = 224,
                 crop_scale: Tuple[float, float] = CROP_SCALE,
                 photometric: Union[str, bool] = 'cpu',
                 num_views: int = 2,
                 jitter_backend: str = 'cv2',
                 blur_sigma: Tuple[float, float] = BLUR_SIGMA_RANGE,
                 crop: str = 'cpu') -> None:
        if num_views not in (1, 2):
            raise ValueError(
                f'FOLKViews: num_views must be 1 or 2, got {num_views}')
        if not isinstance(crop_size, int) or crop_size <= 0:
            raise ValueError(f'FOLKViews: crop_size must be a positive int, '
                             f'got {crop_size!r}')
        if (not isinstance(crop_scale, Sequence) or len(crop_scale) != 2
                or not 0 < crop_scale[0] <= crop_scale[1] <= 1):
            raise ValueError(f'FOLKViews: crop_scale must satisfy 0 < min <= '
                             f'max <= 1 (a (min, max) pair), got {crop_scale}')
        if jitter_backend not in self.JITTER_BACKENDS:
            raise ValueError(f'FOLKViews: jitter_backend must be one of '
                             f'{self.JITTER_BACKENDS}, got {jitter_backend!r}')
        if isinstance(photometric, bool):
            photometric = 'cpu' if photometric else 'none'
        if photometric not in self.PHOTOMETRIC:
            raise ValueError(f'FOLKViews: photometric must be one of '
                             f'{self.PHOTOMETRIC} (or True / False), got '
                             f'{photometric!r}')
        if photometric == 'device' and jitter_backend != 'cv2':
            raise ValueError(
                "FOLKViews: photometric='device' reproduces MMCV's cv2 "
                "colour functions; jitter_backend='pillow' needs "
                "photometric='cpu'")
        if crop not in self.CROP:
            raise ValueError(f'FOLKViews: crop must be one of {self.CROP}, '
                             f'got {crop!r}')
        if crop == 'device' and photometric == 'cpu':
            raise ValueError(
                "FOLKViews: crop='device' cuts the views on the device, after "
                "the workers; photometric='cpu' would need them here: use "
                "photometric='device' (or 'none') with crop='device'")
        if (not isinstance(blur_sigma, Sequence) or len(blur_sigma) != 2
                or not 0 < blur_sigma[0] <= blur_sigma[1]):
            raise ValueError(f'FOLKViews: blur_sigma must be a (min, max) '
                             f'pair with 0 < min <= max, got {blur_sigma!r}')
        self.crop_size = crop_size
        self.crop_scale = tuple(crop_scale)
        self.blur_sigma = tuple(float(b) for b in blur_sigma)
        self.photometric = photometric
        self.num_views = num_views
        self.jitter_backend = jitter_backend
        self.crop = crop
        # Crop and flip are MMPretrain's transforms, built under its scope
        # (``_scope_``) so that FOLKViews also works without
        # ``default_scope`` (scripts, tests) or under another scope.
        self.pipelines = [
            Compose([
                TRANSFORMS.build(dict(t, _scope_='mmpretrain'))
                for t in folk_view_transforms(i, crop_size, crop_scale, False)
            ]) for i in range(num_views)
        ]

    def transform(self, results: Dict) -> Dict:
        """Replace ``img`` by the list of views (see the class docstring)."""
        if self.crop == 'device':
            return self._draw_only(results)
        views, params = [], []
        for i, pipeline in enumerate(self.pipelines):
            view = pipeline(copy.deepcopy(results))['img']
            if self.photometric != 'none':
                p = draw_photometric_params(i, self.blur_sigma)
                if self.photometric == 'cpu':
                    view = apply_photometric_cpu(view, p, self.jitter_backend)
                params.append(p)
            views.append(view)
        results['img'] = views
        if self.photometric == 'device':
            results['photometric_params'] = params
        return results

    def _draw_only(self, results: Dict) -> Dict:
        """``crop='device'``: draw every view's crop, flip and photometric
        parameters with the random calls of the CPU path, in its order."""
        img = results['img']
        crops, params = [], []
        for i, pipeline in enumerate(self.pipelines):
            resized_crop, flip = pipeline.transforms
            top, left, height, width = resized_crop.rand_crop_params(img)
            crops.append(
                dict(
                    box=(int(top), int(left), int(height), int(width)),
                    flip=flip._choose_direction() is not None,
                    size=self.crop_size))
            if self.photometric != 'none':
                params.append(draw_photometric_params(i, self.blur_sigma))
        results['crop_params'] = crops
        if self.photometric == 'device':
            results['photometric_params'] = params
        return results

    def __repr__(self) -> str:
        return (f'{self.__class__.__name__}(crop_size={self.crop_size}, '
                f'crop_scale={self.crop_scale}, '
                f'photometric={self.photometric!r}, '
                f'num_views={self.num_views}, '
                f'jitter_backend={self.jitter_backend!r}, '
                f'blur_sigma={self.blur_sigma}, crop={self.crop!r})')


__all__ = [
    'RandomFrequencyFilter', 'FOLKViews', 'check_filters',
    'draw_photometric_params', 'folk_view_transforms'
]
