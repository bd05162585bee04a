"""tools/visualize_frequency_masks.py writes the expected PNG grid."""
import importlib.util
import os.path as osp

import numpy as np
import pytest
import torch
from PIL import Image

from folk.frequency import filter_images, kind_to_index, mfm_radius


@pytest.fixture(scope='module')
def tool(repo_root):
    path = osp.join(repo_root, 'tools', 'visualize_frequency_masks.py')
    spec = importlib.util.spec_from_file_location('visualize_frequency_masks',
                                                  path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope='module')
def image_path(imagenette_root):
    with open(osp.join(imagenette_root, 'val.txt')) as f:
        rel = f.readline().split()[0]
    return osp.join(imagenette_root, rel)


@pytest.mark.parametrize('colors', [256, 0])
def test_writes_grid_png(tool, image_path, tmp_path, colors):
    out = tmp_path / 'sub' / 'masks.png'
    info = tool.main([
        image_path, '--size', '64', '--out',
        str(out), '--panel', '1.0', '--dpi', '40', '--colors',
        str(colors)
    ])
    assert out.is_file()
    # one row per filter: Com x 3 ratios, RCom x 3 ratios, low, high
    rows = info['rows']
    assert [(r['kind'], r['param'])
            for r in rows] == [('com', 0.005), ('com', 0.01), ('com', 0.05),
                               ('rcom', 0.005), ('rcom', 0.01), ('rcom', 0.05),
                               ('lowpass', mfm_radius(64)),
                               ('highpass', mfm_radius(64))]
    width_in, height_in = tool.figure_inches(8, 1.0)
    expected = (int(round(height_in * 40)), int(round(width_in * 40)))
    assert info['pixels'] == expected
    with Image.open(out) as im:
        assert im.format == 'PNG'
        assert im.mode == ('P' if colors else 'RGBA')
        assert (im.height, im.width) == expected
        pixels = np.asarray(im.convert('RGB'))
    assert pixels.shape == expected + (3, )
    assert height_in > width_in  # 8 rows, 4 columns
    assert pixels.std() > 20  # not a blank canvas


def test_rows_hold_what_is_drawn(tool, image_path, tmp_path):
    info = tool.render([image_path],
                       str(tmp_path / 'x.png'),
                       size=32,
                       panel=0.5,
                       dpi=20,
                       colors=0)
    img = tool.load_rgb01(image_path, 32)
    assert img.shape == (32, 32, 3) and img.dtype == np.float32
    x = torch.from_numpy(img).permute(2, 0, 1)[None]
    for row in info['rows']:
        assert row['image'] is not None and row['image'].shape == (32, 32, 3)
        filtered, keep = filter_images(x, kind_to_index([row['kind']]),
                                       torch.tensor([row['param']]))
        # masks are drawn fftshifted (DC in the centre)
        np.testing.assert_array_equal(row['keep'],
                                      np.fft.fftshift(keep[0].numpy()))
        assert row['keep'][16, 16] == (row['kind'] in ('com', 'lowpass'))
        np.testing.assert_allclose(row['filtered'],
                                   filtered[0].permute(1, 2, 0).numpy())
        assert row['kept'] == pytest.approx(float(keep.float().mean()))
        # log-magnitude spectrum, shifted: its maximum (DC) is central
        assert np.unravel_index(row['spectrum'].argmax(),
                                row['spectrum'].shape) == (16, 16)


def test_default_images_come_from_val_txt(tool, imagenette_root):
    paths = tool.default_images(imagenette_root, 3)
    assert len(paths) == 3 and all(osp.isfile(p) for p in paths)
    assert osp.normpath(tool.DEFAULT_DATA_ROOT).endswith(
        osp.join('shared', 'data', 'imagenette128'))
    with pytest.raises(FileNotFoundError, match='val.txt'):
        tool.default_images(str(imagenette_root) + '_missing', 3)


def test_docs_figure_is_not_replaced_by_default(tool, repo_root, image_path):
    figure = osp.join(repo_root, 'docs', 'img', 'frequency_masks.png')
    with open(figure, 'rb') as f:
        before = f.read()
    with pytest.raises(FileExistsError, match='tracked by git'):
        tool.main([image_path, '--size', '32', '--out', figure])
    with open(figure, 'rb') as f:
        assert f.read() == before
    assert tool.parse_args([]).out == 'work_dirs/frequency_masks.png'
