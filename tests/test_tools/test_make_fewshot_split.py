"""tools/make_fewshot_split.py: class-balanced, deterministic subsets."""
import importlib.util
import os.path as osp
import random
from collections import Counter

import pytest


@pytest.fixture(scope='module')
def tool(repo_root):
    spec = importlib.util.spec_from_file_location(
        'make_fewshot_split',
        osp.join(repo_root, 'tools', 'make_fewshot_split.py'))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def ann_file(tmp_path):
    """Unbalanced 5-class annotation file, 60-140 images per class."""
    rng = random.Random(1)
    lines = [f'train/c{c}/img_{i:04d}.jpg {c}' for c in range(5)
             for i in range(60 + 20 * c)]
    rng.shuffle(lines)
    path = tmp_path / 'train.txt'
    path.write_text('\n'.join(lines) + '\n')
    return str(path)


def _read(path):
    return [line.split() for line in open(path).read().splitlines()]


def test_ratio_balanced_and_deterministic(tool, ann_file, tmp_path, capsys):
    out1, out2 = str(tmp_path / 'a.txt'), str(tmp_path / 'b.txt')
    assert tool.main([ann_file, out1, '--ratio', '0.1', '--seed', '3']) == 0
    assert tool.main([ann_file, out2, '--ratio', '0.1', '--seed', '3']) == 0
    assert open(out1).read() == open(out2).read()
    lines = _read(out1)
    counts = Counter(label for _, label in lines)
    # 10 % of 500 images over 5 classes: 10 per class, every class present
    assert counts == {str(c): 10 for c in range(5)}
    assert len({p for p, _ in lines}) == 50
    assert all(p.startswith(f'train/c{label}/') for p, label in lines)
    assert '50 of 500 images, 10 per class x 5 classes' in \
        capsys.readouterr().out
    # input order is kept
    order = [line.split()[0] for line in open(ann_file).read().split('\n')
             if line]
    assert [p for p, _ in lines] == [p for p in order
                                     if p in {q for q, _ in lines}]


def test_seed_changes_subset_order_does_not(tool, ann_file, tmp_path):
    items = tool.read_annotations(ann_file)
    a = tool.fewshot_subset(items, ratio=0.1, seed=0)
    b = tool.fewshot_subset(items, ratio=0.1, seed=1)
    assert set(a) != set(b)
    shuffled = list(items)
    random.Random(5).shuffle(shuffled)
    assert set(tool.fewshot_subset(shuffled, ratio=0.1, seed=0)) == set(a)


def test_per_class_and_nesting(tool, ann_file):
    items = tool.read_annotations(ann_file)
    small = tool.fewshot_subset(items, per_class=2, seed=0)
    large = tool.fewshot_subset(items, per_class=12, seed=0)
    assert Counter(label for _, label in small) == {c: 2 for c in range(5)}
    assert set(small) <= set(large)  # 1 % subset inside the 10 % subset
    # tiny ratio: at least one image of every class
    one = tool.fewshot_subset(items, ratio=0.001, seed=0)
    assert Counter(label for _, label in one) == {c: 1 for c in range(5)}


@pytest.mark.parametrize('args', [['--ratio', '0'], ['--ratio', '1.5'],
                                  ['--ratio', '-0.1'], ['--per-class', '0'],
                                  ['--per-class', '61'], []])
def test_bad_arguments(tool, ann_file, tmp_path, capsys, args):
    out = str(tmp_path / 'out.txt')
    with pytest.raises(SystemExit) as exc:
        tool.main([ann_file, out] + args)
    assert exc.value.code == 2
    assert not osp.exists(out)
    err = capsys.readouterr().err
    if args[:1] == ['--ratio']:
        assert 'ratio must be in (0, 1]' in err
    elif args == ['--per-class', '61']:
        assert 'fewer than 61 images' in err


def test_bad_file(tool, tmp_path, capsys):
    bad = tmp_path / 'bad.txt'
    bad.write_text('img.jpg cat\n')
    with pytest.raises(SystemExit):
        tool.main([str(bad), str(tmp_path / 'o.txt'), '--ratio', '0.1'])
    assert 'bad.txt:1: expected "path label"' in capsys.readouterr().err


def test_imagenette_10pct(tool, imagenette_root, tmp_path):
    items = tool.read_annotations(osp.join(imagenette_root, 'train.txt'))
    subset = tool.fewshot_subset(items, ratio=0.1, seed=0)
    counts = Counter(label for _, label in subset)
    assert len(counts) == 10 and set(counts.values()) == {95}
    assert all(osp.isfile(osp.join(imagenette_root, p)) for p, _ in subset)
