"""Make a few-shot subset of an MMPretrain annotation file.

Usage:
    python tools/make_fewshot_split.py IN.txt OUT.txt --simclr-list LIST
    python tools/make_fewshot_split.py IN.txt OUT.txt --ratio 0.01 [--seed 0]
    python tools/make_fewshot_split.py IN.txt OUT.txt --per-class 13

``IN.txt`` has one ``path label`` line per image (MMPretrain's
``CustomDataset`` / ``ImageNet`` format, e.g. ``meta/train.txt``).

``--simclr-list``: the standard semi-supervised subsets. SimCLRv2's
``imagenet_subsets/1percent.txt`` / ``10percent.txt`` (12,811 / 128,116
images, used by SimCLRv2, iBOT, MSN, ...) list one image file name per
line (``n01440764_10026.JPEG``); the output keeps the lines of ``IN.txt``
whose file name is in the list. Every listed name must be found exactly
once.

``--ratio`` / ``--per-class``: a seeded class-balanced subset. Every class
gets the same number of images: ``--per-class N``, or
``round(ratio * total / num_classes)`` for ``--ratio`` (1 % of ImageNet-1K:
13 per class, 10 %: 128). The choice depends only on the seed and the set of
lines (not on their order): each class's paths are sorted and shuffled with
``random.Random(seed)``, so the 1 % subset is contained in the 10 % subset
for the same seed.

Output lines keep the input order and are written atomically.
"""
import argparse
import os
import os.path as osp
import random
import sys
import tempfile
from collections import defaultdict
from typing import Dict, List, Optional, Sequence, Tuple


def read_annotations(path: str) -> List[Tuple[str, int]]:
    """``[(image_path, label), ...]`` from a ``path label`` file."""
    items = []
    with open(path, encoding='utf-8') as f:
        for lineno, line in enumerate(f, 1):
            line = line.strip()
            if not line:
                continue
            parts = line.rsplit(maxsplit=1)
            if len(parts) != 2 or not parts[1].lstrip('-').isdigit():
                raise ValueError(f'{path}:{lineno}: expected "path label", '
                                 f'got {line!r}')
            items.append((parts[0], int(parts[1])))
    if not items:
        raise ValueError(f'{path} has no annotation lines')
    return items


def fewshot_subset(items: Sequence[Tuple[str, int]],
                   ratio: Optional[float] = None,
                   per_class: Optional[int] = None,
                   seed: int = 0) -> List[Tuple[str, int]]:
    """Class-balanced subset of ``items`` (in their original order).

    Args:
        items: ``(path, label)`` pairs.
        ratio (float, optional): Fraction of all images, in (0, 1].
        per_class (int, optional): Images per class (exclusive with ratio).
        seed (int): Random seed.

    Raises:
        ValueError: Bad ratio / per_class, or a class with fewer images than
            requested.
    """
    if (ratio is None) == (per_class is None):
        raise ValueError('give exactly one of ratio and per_class')
    by_class: Dict[int, List[int]] = defaultdict(list)
    for index, (_, label) in enumerate(items):
        by_class[label].append(index)
    if ratio is not None:
        if not 0 < ratio <= 1:
            raise ValueError(f'ratio must be in (0, 1], got {ratio}')
        per_class = max(1, round(ratio * len(items) / len(by_class)))
    if per_class < 1:
        raise ValueError(f'per_class must be >= 1, got {per_class}')
    small = {c: len(v) for c, v in by_class.items() if len(v) < per_class}
    if small:
        raise ValueError(f'{len(small)} classes have fewer than {per_class} '
                         f'images (e.g. {dict(list(small.items())[:5])})')
    chosen = []
    for label in sorted(by_class):
        indices = sorted(by_class[label], key=lambda i: items[i][0])
        random.Random(f'{seed}-{label}').shuffle(indices)
        chosen += indices[:per_class]
    return [items[i] for i in sorted(chosen)]


def read_name_list(path: str) -> List[str]:
    """Image file names, one per line (SimCLRv2's subset lists).

    Raises:
        ValueError: A line with more than one field, a duplicate name or an
            empty file (the message names the file and line).
    """
    names: List[str] = []
    seen: Dict[str, int] = {}
    with open(path, encoding='utf-8') as f:
        for lineno, line in enumerate(f, 1):
            line = line.strip()
            if not line:
                continue
            if len(line.split()) != 1:
                raise ValueError(f'{path}:{lineno}: expected one image file '
                                 f'name (e.g. n01440764_10026.JPEG), got '
                                 f'{line!r}')
            name = osp.basename(line)
            if name in seen:
                raise ValueError(f'{path}:{lineno}: {name} is listed twice '
                                 f'(first on line {seen[name]})')
            seen[name] = lineno
            names.append(name)
    if not names:
        raise ValueError(f'{path} lists no image')
    return names


def subset_from_names(items: Sequence[Tuple[str, int]],
                      names: Sequence[str],
                      list_name: str = 'the list') -> List[Tuple[str, int]]:
    """The ``items`` whose file name (last path component) is in ``names``.

    Args:
        items: ``(path, label)`` pairs, e.g. from ``meta/train.txt``.
        names: Image file names (``n01440764_10026.JPEG``).
        list_name (str): Name of the list, for messages.

    Returns:
        list: The matching items, in their original order.

    Raises:
        ValueError: If a listed name is not among ``items`` or matches more
            than one of them.
    """
    wanted = set(names)
    chosen = []
    found: Dict[str, int] = defaultdict(int)
    for path, label in items:
        name = osp.basename(path)
        if name in wanted:
            found[name] += 1
            chosen.append((path, label))
    missing = [n for n in names if n not in found]
    if missing:
        raise ValueError(f'{len(missing)} of the {len(names)} images in '
                         f'{list_name} are not in the annotation file (e.g. '
                         f'{missing[:3]})')
    repeated = [n for n, count in found.items() if count > 1]
    if repeated:
        raise ValueError(f'{len(repeated)} names in {list_name} match '
                         f'several annotation lines (e.g. {repeated[:3]})')
    return chosen


def write_annotations(items: Sequence[Tuple[str, int]], path: str) -> None:
    """Write ``path label`` lines atomically (tmp file + os.replace)."""
    out_dir = osp.dirname(osp.abspath(path))
    os.makedirs(out_dir, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=out_dir, suffix='.tmp')
    try:
        with os.fdopen(fd, 'w', encoding='utf-8') as f:
            f.writelines(f'{p} {label}\n' for p, label in items)
        os.replace(tmp, path)
    except BaseException:
        if osp.exists(tmp):
            os.remove(tmp)
        raise


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='Class-balanced few-shot subset of an MMPretrain '
        'annotation file ("path label" lines).')
    parser.add_argument('src', help='annotation file, e.g. meta/train.txt')
    parser.add_argument('dst', help='output, e.g. meta/train_1pct.txt')
    group = parser.add_mutually_exclusive_group(required=True)
    group.add_argument(
        '--simclr-list',
        help="SimCLRv2's subset list (imagenet_subsets/1percent.txt or "
        '10percent.txt): one image file name per line')
    group.add_argument(
        '--ratio',
        type=float,
        help='seeded class-balanced subset: fraction of images, e.g. 0.01')
    group.add_argument(
        '--per-class',
        type=int,
        help='seeded class-balanced subset: images per class')
    parser.add_argument(
        '--seed',
        type=int,
        default=0,
        help='random seed of the class-balanced subset')
    return parser, parser.parse_args(argv)


def main(argv=None) -> int:
    parser, args = parse_args(argv)
    try:
        items = read_annotations(args.src)
        if args.simclr_list:
            subset = subset_from_names(items, read_name_list(args.simclr_list),
                                       args.simclr_list)
        else:
            subset = fewshot_subset(items, args.ratio, args.per_class,
                                    args.seed)
    except (OSError, ValueError) as err:
        parser.error(str(err))
    write_annotations(subset, args.dst)
    classes = len({label for _, label in items})
    counts: Dict[int, int] = defaultdict(int)
    for _, label in subset:
        counts[label] += 1
    low, high = min(counts.values()), max(counts.values())
    per_class = str(low) if low == high else f'{low}-{high}'
    how = (f'from {args.simclr_list}'
           if args.simclr_list else f'seed {args.seed}')
    print(f'{args.dst}: {len(subset)} of {len(items)} images, '
          f'{per_class} per class x {len(counts)} of {classes} classes '
          f'({how})')
    return 0


if __name__ == '__main__':
    sys.exit(main())
