"""tools/make_fewshot_split.py: SimCLRv2 lists and seeded balanced subsets."""
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
    lines = [
        f'train/c{c}/c{c}_{i:04d}.jpg {c}' for c in range(5)
        for i in range(60 + 20 * c)
    ]
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
    assert '50 of 500 images, 10 per class x 5 of 5 classes (seed 3)' in \
        capsys.readouterr().out
    # input order is kept
    order = [
        line.split()[0] for line in open(ann_file).read().split('\n') if line
    ]
    assert [p for p, _ in lines
            ] == [p for p in order if p in {q
                                            for q, _ in lines}]


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


@pytest.mark.parametrize(
    'args', [['--ratio', '0'], ['--ratio', '1.5'], ['--ratio', '-0.1'],
             ['--per-class', '0'], ['--per-class', '61'], [],
             ['--ratio', '0.1', '--simclr-list', 'x']])
def test_bad_arguments(tool, ann_file, tmp_path, capsys, args):
    out = str(tmp_path / 'out.txt')
    with pytest.raises(SystemExit) as exc:
        tool.main([ann_file, out] + args)
    assert exc.value.code == 2
    assert not osp.exists(out)
    err = capsys.readouterr().err
    if '--simclr-list' in args:
        assert 'not allowed with argument --ratio' in err
    elif args[:1] == ['--ratio']:
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


def _simclr_list(tmp_path, names, name='1percent.txt'):
    """A list in SimCLRv2's imagenet_subsets format: one file name a line."""
    path = tmp_path / name
    path.write_text(''.join(f'{n}\n' for n in names))
    return str(path)


def test_simclr_list(tool, ann_file, tmp_path, capsys):
    """The lines of IN.txt whose file name is listed, in IN.txt's order."""
    items = tool.read_annotations(ann_file)
    picked = [items[i] for i in (7, 3, 250, 499, 120)]
    names = [osp.basename(p) for p, _ in picked]
    out = str(tmp_path / 'train_1pct.txt')
    lst = _simclr_list(tmp_path, names)
    assert tool.main([ann_file, out, '--simclr-list', lst]) == 0
    lines = [tuple(line.split()) for line in open(out).read().splitlines()]
    expected = [(p, str(label)) for p, label in items if (p, label) in picked]
    assert lines == expected  # same lines, input order kept
    assert len(lines) == 5
    assert '5 of 500 images, 1-2 per class x 4 of 5 classes (from ' in \
        capsys.readouterr().out


def test_simclr_list_imagenet_names(tool, tmp_path):
    """ImageNet-style names (n01440764_10026.JPEG) under class folders."""
    ann = tmp_path / 'train.txt'
    ann.write_text('n01440764/n01440764_10026.JPEG 0\n'
                   'n01440764/n01440764_10027.JPEG 0\n'
                   'n01443537/n01443537_2.JPEG 1\n')
    lst = _simclr_list(tmp_path, ['n01443537_2.JPEG', 'n01440764_10026.JPEG'])
    subset = tool.subset_from_names(
        tool.read_annotations(str(ann)), tool.read_name_list(lst))
    assert subset == [('n01440764/n01440764_10026.JPEG', 0),
                      ('n01443537/n01443537_2.JPEG', 1)]


@pytest.mark.parametrize('names,message', [
    (['c0_9999.jpg'], '1 of the 1 images in'),
    (['c0_0001.jpg', 'c0_0001.jpg'], 'c0_0001.jpg is listed twice'),
    (['c0_0001.jpg 0'], 'expected one image file name'),
    ([], 'lists no image'),
])
def test_simclr_list_errors(tool, ann_file, tmp_path, capsys, names, message):
    out = str(tmp_path / 'out.txt')
    lst = _simclr_list(tmp_path, names)
    with pytest.raises(SystemExit) as exc:
        tool.main([ann_file, out, '--simclr-list', lst])
    assert exc.value.code == 2
    assert message in capsys.readouterr().err
    assert not osp.exists(out)


def test_simclr_list_ambiguous_name(tool, tmp_path):
    """A file name found under two folders cannot be resolved."""
    items = [('a/x.jpg', 0), ('b/x.jpg', 1), ('b/y.jpg', 1)]
    with pytest.raises(ValueError, match='match several annotation lines'):
        tool.subset_from_names(items, ['x.jpg'])
