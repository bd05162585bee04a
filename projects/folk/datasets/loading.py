"""Image loading with a documented policy for unusual and broken files."""
import io
from typing import Optional

import cv2
import numpy as np
from mmcv.transforms import LoadImageFromFile
from mmengine import fileio
from mmengine.logging import print_log
from mmpretrain.registry import TRANSFORMS


class ImageLoadError(OSError):
    """An image file that cannot be used; the message names the file.

    Takes a single message argument so that PyTorch's DataLoader can re-raise
    it unchanged in the main process when it happens in a worker.
    """


@TRANSFORMS.register_module()
class LoadImageFromFileSafe(LoadImageFromFile):
    """Load an image as 8-bit, 3-channel BGR, or fail naming the file.

    Policy (every case is covered by ``tests/test_reliability/
    test_bad_images.py``):

    ==========================  =============================================
    file                        result
    ==========================  =============================================
    RGB / BGR, 8-bit            loaded as is
    grayscale (+ alpha)         gray replicated to 3 channels, alpha dropped
    RGBA, palette, CMYK         converted to 3-channel colour, alpha dropped
    16-bit PNG / TIFF           scaled to 8 bits (``value >> 8``)
    smaller than the crop       loaded; ``RandomResizedCrop`` upscales it
    extreme aspect ratio        loaded; ``RandomResizedCrop`` takes a crop
                                with aspect ratio in [3/4, 4/3] and resizes
    shorter side < min_size,    rejected (see ``on_error``); the three
    aspect > max_aspect_ratio,  checks are off by default; ``max_pixels``
    more than max_pixels        reads the size from the file header, before
                                decoding
    missing, unreadable, empty  rejected
    corrupt / truncated data    rejected when the decoder fails (OpenCV
                                refuses truncated JPEG and PNG files)
    damaged bytes inside a      not detectable: the decoder returns an image
    well-formed file            (libjpeg prints "Corrupt JPEG data")
    ==========================  =============================================

    Rejected files raise :class:`ImageLoadError` with the file name and the
    reason (``on_error='raise'``, the default), or, with ``on_error='skip'``,
    are reported in a warning and replaced by another random image of the
    dataset (MMEngine datasets re-sample when the pipeline returns None;
    training only).

    Decoding always uses OpenCV with ``IMREAD_COLOR`` (EXIF orientation is
    applied): Pillow's conversion of 16-bit images to RGB clips instead of
    scaling, a silent wrong result.

    Args:
        on_error (str): ``'raise'`` or ``'skip'``. Defaults to ``'raise'``.
        min_size (int): Reject images whose shorter side is smaller.
            Defaults to 1 (accept all).
        max_aspect_ratio (float, optional): Reject images whose longer /
            shorter side ratio is larger. Defaults to None (accept all).
        max_pixels (int, optional): Reject images with more pixels
            (width x height, read from the header without decoding; e.g.
            ``50_000_000``): a 20000 x 20000 PNG of 0.4 MB decodes to
            1.2 GB. Defaults to None (OpenCV's own limit, 2**30 pixels).
        to_float32 (bool): As :class:`mmcv.transforms.LoadImageFromFile`.
        backend_args (dict, optional): As
            :class:`mmcv.transforms.LoadImageFromFile`.
    """

    def __init__(self,
                 on_error: str = 'raise',
                 min_size: int = 1,
                 max_aspect_ratio: Optional[float] = None,
                 max_pixels: Optional[int] = None,
                 to_float32: bool = False,
                 color_type: str = 'color',
                 imdecode_backend: str = 'cv2',
                 backend_args: Optional[dict] = None) -> None:
        name = type(self).__name__
        if on_error not in ('raise', 'skip'):
            raise ValueError(f"{name}: on_error must be 'raise' or 'skip', "
                             f'got {on_error!r}')
        if color_type != 'color':
            raise ValueError(f"{name}: color_type must be 'color' (FOLK needs "
                             f'3-channel images), got {color_type!r}')
        if imdecode_backend != 'cv2':
            raise ValueError(
                f"{name}: imdecode_backend must be 'cv2', got "
                f'{imdecode_backend!r} (Pillow clips 16-bit images)')
        if int(min_size) < 1:
            raise ValueError(f'{name}: min_size must be >= 1, got {min_size}')
        if max_aspect_ratio is not None and not max_aspect_ratio >= 1:
            raise ValueError(f'{name}: max_aspect_ratio must be >= 1 or None, '
                             f'got {max_aspect_ratio}')
        if max_pixels is not None and not int(max_pixels) >= 1:
            raise ValueError(
                f'{name}: max_pixels must be >= 1 or None, got {max_pixels}')
        super().__init__(
            to_float32=to_float32,
            color_type='color',
            imdecode_backend='cv2',
            backend_args=backend_args)
        self.on_error = on_error
        self.min_size = int(min_size)
        self.max_aspect_ratio = max_aspect_ratio
        self.max_pixels = None if max_pixels is None else int(max_pixels)

    @staticmethod
    def _header_size(data: bytes) -> Optional[tuple]:
        """(width, height) from the header, or None if Pillow cannot tell."""
        from PIL import Image
        try:
            with Image.open(io.BytesIO(data)) as img:
                return img.size
        except Exception:  # noqa: BLE001 - left to the decoder
            return None

    def _reject(self, filename: str, reason: str) -> None:
        msg = f'cannot use image file {filename!r}: {reason}'
        if self.on_error == 'raise':
            raise ImageLoadError(msg)
        print_log(
            f'{msg}; skipped (on_error="skip")', logger='current',
            level=30)  # logging.WARNING

    def transform(self, results: dict) -> Optional[dict]:
        """Load ``results['img_path']`` into ``results['img']``."""
        filename = results['img_path']
        try:
            data = fileio.get(filename, backend_args=self.backend_args)
        except Exception as err:  # noqa: BLE001 - reported with the file
            return self._reject(
                filename, f'cannot read the file '
                f'({type(err).__name__}: {err})')
        if not data:
            return self._reject(filename, 'empty file')
        if self.max_pixels is not None:
            size = self._header_size(data)
            if size is not None and size[0] * size[1] > self.max_pixels:
                return self._reject(
                    filename, f'{size[0]}x{size[1]} pixels, more than '
                    f'max_pixels={self.max_pixels}')
        try:
            img = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
        except cv2.error as err:
            return self._reject(filename, f'OpenCV cannot decode it ({err})')
        if img is None:
            return self._reject(
                filename, 'not a decodable image (corrupt, truncated or an '
                'unsupported format)')
        if img.ndim != 3 or img.shape[2] != 3 or img.dtype != np.uint8:
            return self._reject(  # pragma: no cover - IMREAD_COLOR contract
                filename, f'decoded to an unexpected array {img.shape} '
                f'{img.dtype}')
        h, w = img.shape[:2]
        if min(h, w) < self.min_size:
            return self._reject(
                filename, f'{w}x{h} pixels, shorter side < min_size='
                f'{self.min_size}')
        if (self.max_aspect_ratio is not None
                and max(h, w) / min(h, w) > self.max_aspect_ratio):
            return self._reject(
                filename, f'{w}x{h} pixels, aspect ratio '
                f'{max(h, w) / min(h, w):.3g} > max_aspect_ratio='
                f'{self.max_aspect_ratio}')
        if self.to_float32:
            img = img.astype(np.float32)
        results['img'] = img
        results['img_shape'] = img.shape[:2]
        results['ori_shape'] = img.shape[:2]
        return results

    def __repr__(self) -> str:
        return (f'{type(self).__name__}(on_error={self.on_error!r}, '
                f'min_size={self.min_size}, '
                f'max_aspect_ratio={self.max_aspect_ratio}, '
                f'max_pixels={self.max_pixels}, '
                f'to_float32={self.to_float32}, '
                f'backend_args={self.backend_args})')


__all__ = ['ImageLoadError', 'LoadImageFromFileSafe']
