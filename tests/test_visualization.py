"""folk.visualization: the helpers shared by the picture tools."""
import argparse
import os.path as osp

import cv2
import numpy as np
import pytest
import torch
from PIL import Image

from folk.visualization import (add_figure_args, default_images, figure_inches,
                                label_row, load_rgb01, log_spectrum,
                                panel_grid, save_figure)


def test_default_images_one_per_class(imagenette_root):
    paths = default_images(imagenette_root, 4)
    assert len(paths) == 4 and all(osp.isfile(p) for p in paths)
    # the first image of each class, in val.txt order
    labels = {}
    with open(osp.join(imagenette_root, 'val.txt')) as f:
        for line in f:
            rel, label = line.split()[:2]
            labels.setdefault(label, osp.join(imagenette_root, rel))
    assert paths == list(labels.values())[:4]
    with pytest.raises(FileNotFoundError, match='val.txt'):
        default_images(imagenette_root + '_missing', 2)


def test_load_rgb01(tmp_path):
    bgr = np.zeros((40, 60, 3), np.uint8)
    bgr[..., 2] = 255  # red in BGR
    path = str(tmp_path / 'red.png')
    cv2.imwrite(path, bgr)
    img = load_rgb01(path)
    assert img.shape == (40, 60, 3) and img.dtype == np.float32
    np.testing.assert_allclose(img[0, 0], [1.0, 0.0, 0.0])
    for size in (16, 96):  # shrink (area) and enlarge (bicubic)
        resized = load_rgb01(path, size)
        assert resized.shape == (size, size, 3)
        np.testing.assert_allclose(resized[size // 2, size // 2], [1, 0, 0])
    with pytest.raises(FileNotFoundError, match='missing.png'):
        load_rgb01(str(tmp_path / 'missing.png'))


def test_log_spectrum_centres_dc():
    x = torch.rand(3, 12, 12)
    spec = log_spectrum(x)
    assert spec.shape == (12, 12)
    assert np.unravel_index(spec.argmax(), spec.shape) == (6, 6)
    expected = np.log1p(x.sum((1, 2)).mean().item())
    np.testing.assert_allclose(spec[6, 6], expected, rtol=1e-5)


def test_figure_args_defaults():
    parser = argparse.ArgumentParser()
    add_figure_args(parser, panel=1.5)
    args = parser.parse_args([])
    assert (args.panel, args.dpi, args.colors) == (1.5, 72, 256)
    args = parser.parse_args(['--colors', '0', '--dpi', '30'])
    assert (args.colors, args.dpi) == (0, 30)


@pytest.mark.parametrize('colors', [16, 0])
def test_panel_grid_saved_png(tmp_path, colors):
    columns = ('a', 'b', 'c')
    fig, axes, inches = panel_grid(
        columns, 2, panel=1.0, dpi=20, label_w=1.0, title_h=0.5)
    assert inches == figure_inches(2, 3, 1.0, 1.0, 0.5) == (4.0, 2.5)
    assert len(axes) == 2 and len(axes[0]) == 3
    assert [ax.get_title() for ax in axes[0]] == list(columns)
    assert all(ax.get_title() == '' for ax in axes[1])
    label_row(axes[1][0], 'row 2')
    assert axes[1][0].get_ylabel() == 'row 2'
    out = tmp_path / 'new' / 'grid.png'
    save_figure(fig, str(out), dpi=20, colors=colors)
    with Image.open(out) as im:
        assert im.size == (80, 50)
        assert im.mode == ('P' if colors else 'RGBA')
        if colors:
            assert len(im.getcolors()) <= colors


def test_check_output_never_replaces_a_tracked_file(repo_root, tmp_path):
    from folk.visualization import check_output, tracked_by_git
    figure = osp.join(repo_root, 'docs', 'img', 'frequency_masks.png')
    assert tracked_by_git(figure)
    with pytest.raises(FileExistsError, match='--overwrite'):
        check_output(figure)
    assert check_output(figure, overwrite=True) == figure
    new = str(tmp_path / 'x.png')
    assert not tracked_by_git(new) and check_output(new) == new
