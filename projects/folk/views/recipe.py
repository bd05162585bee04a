"""DINO's two-view recipe, written once.

The probabilities, ranges and constants of FOLK's views; the MMPretrain
transform chain that is the recipe's reference (:func:`folk_view_transforms`);
the worker-side draw of one view's parameters
(:func:`draw_photometric_params`) with the chain's random calls; the
parameter schemas of a view's photometric augmentation (:data:`PARAM_KEYS`)
and crop (:data:`CROP_KEYS`) and their array layouts, in which the
parameters of a whole batch travel from the data workers to the model
(:func:`photometric_array`, :func:`crop_array`); and the CPU reference of the
photometric augmentation with MMCV / Pillow (:func:`apply_photometric_cpu`).
"""
import random
from typing import Dict, List, Sequence, Tuple

import numpy as np

# ---------------------------------------------------------------------------
# DINO's global-view recipe
# ---------------------------------------------------------------------------
JITTER_PROB = 0.8
#: MMPretrain ``ColorJitter`` arguments of the recipe.
JITTER_STRENGTH = dict(brightness=0.4, contrast=0.4, saturation=0.2, hue=0.1)
#: The factor ranges ``ColorJitter`` draws from (hue: a shift).
JITTER_RANGES = {
    name: (-s, s) if name == 'hue' else (1 - s, 1 + s)
    for name, s in JITTER_STRENGTH.items()
}
GRAYSCALE_PROB = 0.2
#: mmcv ``RandomGrayscale`` weights of FOLK's recipe, B, G, R order.
GRAYSCALE_WEIGHTS = (0.114, 0.587, 0.2989)
BLUR_PROBS = (1.0, 0.1)  # per view
BLUR_SIGMA_RANGE = (0.1, 2.0)
SOLARIZE_PROBS = (0.0, 0.2)  # per view
SOLARIZE_THRESHOLD = 128
BLUR_PASSES = 3  # Pillow's GaussianBlur: three box blurs
CROP_SCALE = (0.25, 1.0)

#: Keys of one view's photometric parameter dict and their meaning.
PARAM_KEYS = (
    'jitter',  # bool: colour jitter applied
    'order',  # 4 ints: order of brightness (0), contrast (1),
    #           saturation (2), hue (3)
    'brightness',  # factor, 1 = identity
    'contrast',  # factor, 1 = identity
    'saturation',  # factor, 1 = identity
    'hue',  # shift in [-0.5, 0.5] of a full turn, 0 = identity
    'grayscale',  # bool
    'blur_sigma',  # Gaussian blur radius (Pillow's), 0 = no blur
    'solarize',  # bool: invert the pixels >= SOLARIZE_THRESHOLD
)
JITTER_OPS = ('brightness', 'contrast', 'saturation', 'hue')
#: Columns of :func:`photometric_array` (``order`` takes four).
PHOTOMETRIC_COLUMNS = ('jitter', 'order0', 'order1', 'order2', 'order3',
                       'brightness', 'contrast', 'saturation', 'hue',
                       'grayscale', 'blur_sigma', 'solarize')

#: Keys of one view's crop parameters and their meaning.
CROP_KEYS = (
    'box',  # (top, left, height, width) of the crop in the source, pixels
    'flip',  # bool: flip the resized crop horizontally
    'size',  # int: output side length (square views)
)
#: Columns of :func:`crop_array`.
CROP_COLUMNS = ('top', 'left', 'height', 'width', 'flip', 'size')


def identity_params() -> dict:
    """Photometric parameters that leave an image unchanged."""
    return dict(
        jitter=False,
        order=(0, 1, 2, 3),
        brightness=1.0,
        contrast=1.0,
        saturation=1.0,
        hue=0.0,
        grayscale=False,
        blur_sigma=0.0,
        solarize=False)


def check_params(params: dict, where: str = 'params') -> None:
    """Raise a ValueError naming ``where`` and the key if ``params`` is bad.
    """
    if not isinstance(params, dict):
        raise ValueError(f'{where} must be a dict with keys {PARAM_KEYS}, '
                         f'got {type(params).__name__}')
    missing = [k for k in PARAM_KEYS if k not in params]
    unknown = [k for k in params if k not in PARAM_KEYS]
    if missing or unknown:
        raise ValueError(f'{where}: missing keys {missing}, unknown keys '
                         f'{unknown}; expected {PARAM_KEYS}')
    if sorted(int(i) for i in params['order']) != [0, 1, 2, 3]:
        raise ValueError(f'{where}.order must be a permutation of 0-3, got '
                         f'{params["order"]!r}')
    if not -0.5 <= params['hue'] <= 0.5:
        raise ValueError(f'{where}.hue must be in [-0.5, 0.5], got '
                         f'{params["hue"]!r}')
    for key in ('brightness', 'contrast', 'saturation', 'blur_sigma'):
        if not params[key] >= 0:
            raise ValueError(f'{where}.{key} must be >= 0, got '
                             f'{params[key]!r}')


def check_crop_params(params: dict,
                      height: int,
                      width: int,
                      where: str = 'crop_params') -> None:
    """Raise a ValueError naming ``where`` if ``params`` is malformed or its
    box leaves an image of ``height`` x ``width``."""
    if not isinstance(params, dict) or set(params) != set(CROP_KEYS):
        raise ValueError(f'{where} must be a dict with keys {CROP_KEYS}, got '
                         f'{params!r}')
    box = params['box']
    if len(box) != 4:
        raise ValueError(f'{where}.box must be (top, left, height, width), '
                         f'got {box!r}')
    top, left, h, w = (int(v) for v in box)
    if not (0 <= top and 0 <= left and h > 0 and w > 0 and top + h <= height
            and left + w <= width):
        raise ValueError(f'{where}.box {tuple(box)} does not fit an image of '
                         f'{height} x {width}')
    if int(params['size']) <= 0:
        raise ValueError(f'{where}.size must be positive, got '
                         f'{params["size"]!r}')


def photometric_array(params: Sequence[dict],
                      check: bool = True,
                      where: str = 'params') -> np.ndarray:
    """The parameter dicts of N views as one (N, 12) float64 array
    (columns :data:`PHOTOMETRIC_COLUMNS`)."""
    out = np.empty((len(params), len(PHOTOMETRIC_COLUMNS)), np.float64)
    for i, p in enumerate(params):
        if check:
            check_params(p, f'{where}[{i}]')
        out[i] = (float(bool(p['jitter'])), *(int(o) for o in p['order']),
                  p['brightness'], p['contrast'], p['saturation'], p['hue'],
                  float(bool(p['grayscale'])), p['blur_sigma'],
                  float(bool(p['solarize'])))
    return out


def crop_array(params: Sequence[dict]) -> np.ndarray:
    """The crop parameter dicts of N views as one (N, 6) int64 array
    (columns :data:`CROP_COLUMNS`)."""
    out = np.empty((len(params), len(CROP_COLUMNS)), np.int64)
    for i, p in enumerate(params):
        out[i] = (*(int(v)
                    for v in p['box']), int(bool(p['flip'])), int(p['size']))
    return out


# ---------------------------------------------------------------------------
# The reference chain and the worker-side draw
# ---------------------------------------------------------------------------
def folk_view_transforms(
        view_index: int,
        crop_size: int = 224,
        crop_scale: Tuple[float, float] = CROP_SCALE,
        photometric: bool = True,
        jitter_backend: str = 'cv2',
        blur_sigma: Tuple[float, float] = BLUR_SIGMA_RANGE) -> List[dict]:
    """MMPretrain transform configs of FOLK view ``view_index`` (0 or 1).

    RandomResizedCrop (bicubic) + flip and, with ``photometric``, DINO's
    global photometric augmentation as MMPretrain transforms: colour jitter
    (p=0.8), grayscale (p=0.2), Gaussian blur (p=1.0 for view 0, 0.1 for
    view 1) and solarisation (p=0.2, view 1 only).
    :class:`folk.datasets.FOLKViews` runs the crop and flip of this list and
    draws the photometric parameters itself
    (:func:`draw_photometric_params`), with the same random calls in the
    same order, so that with the same seed it gives the images of this list
    (tested); the list is kept as the reference of the recipe.
    ``blur_sigma`` is the Gaussian blur's radius range in pixels (DINO's
    0.1-2.0 is meant for 224 px crops).
    """
    view = [
        dict(
            type='RandomResizedCrop',
            scale=crop_size,
            crop_ratio_range=crop_scale,
            backend='pillow',
            interpolation='bicubic'),
        dict(type='RandomFlip', prob=0.5),
    ]
    if photometric:
        view += [
            dict(
                type='RandomApply',
                transforms=[
                    dict(
                        type='ColorJitter',
                        backend=jitter_backend,
                        **JITTER_STRENGTH)
                ],
                prob=JITTER_PROB),
            dict(
                type='RandomGrayscale',
                prob=GRAYSCALE_PROB,
                keep_channels=True,
                channel_weights=GRAYSCALE_WEIGHTS),
            dict(
                type='GaussianBlur',
                magnitude_range=tuple(blur_sigma),
                magnitude_std='inf',
                prob=BLUR_PROBS[view_index]),
        ]
        if SOLARIZE_PROBS[view_index] > 0:
            view.append(
                dict(
                    type='Solarize',
                    thr=SOLARIZE_THRESHOLD,
                    prob=SOLARIZE_PROBS[view_index]))
    return view


def draw_photometric_params(
        view_index: int,
        blur_sigma: Tuple[float, float] = BLUR_SIGMA_RANGE) -> dict:
    """Draw one view's photometric parameters (:data:`PARAM_KEYS`).

    Makes the random calls of MMPretrain's chain in
    :func:`folk_view_transforms`, in its order, from the same generators
    (``numpy.random``; ``random`` for the grayscale draw, as MMCV's
    ``RandomGrayscale``): with the same seed the parameters are those the
    chain uses, so both give the same images (tested). Reproducible with the
    data-loader worker seeds that MMEngine sets.
    """
    params = identity_params()
    # RandomApply(ColorJitter): apply?, then ColorJitter._rand_params
    if np.random.rand() < JITTER_PROB:
        params['jitter'] = True
        params['order'] = tuple(int(i) for i in np.random.permutation(4))
        for name in JITTER_OPS:
            params[name] = float(np.random.uniform(*JITTER_RANGES[name]))
    # RandomGrayscale
    params['grayscale'] = random.random() < GRAYSCALE_PROB
    # GaussianBlur: random_disable, then random_magnitude with
    # magnitude_level 10, magnitude_std 'inf', total_level 10
    if not np.random.rand() > BLUR_PROBS[view_index]:
        low, high = blur_sigma
        magnitude = np.random.uniform(0, 10)
        params['blur_sigma'] = float((magnitude / 10) * (high - low) + low)
    if SOLARIZE_PROBS[view_index] > 0:  # Solarize: random_disable
        params['solarize'] = not np.random.rand() > SOLARIZE_PROBS[view_index]
    return params


def apply_photometric_cpu(img: np.ndarray,
                          params: Dict,
                          jitter_backend: str = 'cv2') -> np.ndarray:
    """The photometric recipe on one (H, W, 3) uint8 BGR image with MMCV /
    Pillow, calling the functions MMPretrain's transforms call.

    This is FOLK's CPU path (``FOLKViews(photometric='cpu')``) and the
    reference of the batched operations of :mod:`folk.views.photometric`.
    """
    import mmcv
    from PIL import Image, ImageFilter

    if params['jitter']:
        for op in params['order']:
            name = JITTER_OPS[int(op)]
            if name == 'brightness':
                img = mmcv.adjust_brightness(
                    img, params['brightness'], backend=jitter_backend)
            elif name == 'contrast':
                img = mmcv.adjust_contrast(
                    img, params['contrast'], backend=jitter_backend)
            elif name == 'saturation':
                img = mmcv.adjust_color(
                    img, alpha=params['saturation'], backend=jitter_backend)
            else:
                img = mmcv.adjust_hue(
                    img, params['hue'], backend=jitter_backend)
    if params['grayscale']:
        w = np.array(GRAYSCALE_WEIGHTS) / sum(GRAYSCALE_WEIGHTS)
        gray = (w * img).sum(axis=2).astype('uint8')
        img = np.dstack([gray] * 3)
    if params['blur_sigma'] > 0:
        pil = Image.fromarray(img).filter(
            ImageFilter.GaussianBlur(radius=float(params['blur_sigma'])))
        img = np.array(pil, dtype=img.dtype)
    if params['solarize']:
        img = mmcv.solarize(img, thr=SOLARIZE_THRESHOLD).astype(img.dtype)
    return img


__all__ = [
    'JITTER_PROB', 'JITTER_STRENGTH', 'JITTER_RANGES', 'GRAYSCALE_PROB',
    'GRAYSCALE_WEIGHTS', 'BLUR_PROBS', 'BLUR_SIGMA_RANGE', 'SOLARIZE_PROBS',
    'SOLARIZE_THRESHOLD', 'BLUR_PASSES', 'CROP_SCALE', 'PARAM_KEYS',
    'JITTER_OPS', 'PHOTOMETRIC_COLUMNS', 'CROP_KEYS', 'CROP_COLUMNS',
    'identity_params', 'check_params', 'check_crop_params',
    'photometric_array', 'crop_array', 'folk_view_transforms',
    'draw_photometric_params', 'apply_photometric_cpu'
]
