"""tools/analysis_tools: offline k-NN equals the online monitor; pictures."""
import importlib.util
import os.path as osp

import numpy as np
import pytest
import torch
from mmengine.runner import Runner
from PIL import Image
from runner_utils import demo_cfg

from folk.downstream import convert_checkpoint
from folk.engine import KNNMonitorHook
from folk.evaluation import load_pretrained_model


def _tool(repo_root, name):
    path = osp.join(repo_root, 'tools', 'analysis_tools', f'{name}.py')
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope='module')
def demo_run(tmp_path_factory, imagenette_root):
    """One demo pre-training iteration with a tiny k-NN monitor."""
    work = tmp_path_factory.mktemp('demo')
    cfg = demo_cfg(
        work, imagenette_root, max_iters=1, batch_size=4, ckpt_every=1)
    knn = next(h for h in cfg.custom_hooks if h['type'] == 'KNNMonitorHook')
    knn.update(bank_per_class=3, query_per_class=2, interval=1, batch_size=16)
    for split in ('bank', 'query'):
        knn[split]['data_root'] = str(imagenette_root)
    config = str(work / 'config.py')
    cfg.dump(config)
    runner = Runner.from_cfg(cfg)
    runner.train()
    monitor = next(h for h in runner.hooks if isinstance(h, KNNMonitorHook))
    return dict(
        config=config,
        checkpoint=str(work / 'iter_1.pth'),
        online=monitor.last,
        work=work)


def test_knn_eval_gives_the_online_numbers(repo_root, demo_run):
    tool = _tool(repo_root, 'knn_eval')
    online = demo_run['online']
    assert online['iter'] == 1
    teacher = tool.main([demo_run['config'], demo_run['checkpoint']])
    assert teacher['weights'] == 'FOLK teacher'
    assert (teacher['num_bank'], teacher['num_query']) == (30, 20)
    assert teacher['top1'] == pytest.approx(
        online['knn/teacher_top1'], abs=1e-9)
    student = tool.main([
        demo_run['config'], demo_run['checkpoint'], '--weights', 'student',
        '--out',
        str(demo_run['work'] / 'knn.json')
    ])
    assert student['top1'] == pytest.approx(
        online['knn/student_top1'], abs=1e-9)
    assert (demo_run['work'] / 'knn.json').is_file()
    # a converted MMPretrain backbone (the teacher's) gives the same number
    converted = str(demo_run['work'] / 'mmpretrain.pth')
    convert_checkpoint(demo_run['checkpoint'], converted, 'mmpretrain')
    result = tool.main([demo_run['config'], converted])
    assert result['weights'] == 'converted MMPretrain backbone'
    assert result['top1'] == pytest.approx(
        online['knn/teacher_top1'], abs=1e-9)


def test_knn_eval_names_bad_input(repo_root, demo_run, tmp_path):
    tool = _tool(repo_root, 'knn_eval')
    bad = tmp_path / 'bad.pth'
    torch.save({'state_dict': {'head.fc.weight': torch.zeros(2)}}, bad)
    with pytest.raises(ValueError, match='neither a FOLK / MFM'):
        tool.main([demo_run['config'], str(bad)])
    no_hook = tmp_path / 'no_hook.py'
    no_hook.write_text(
        f"_base_ = [{demo_run['config']!r}]\ncustom_hooks = []\n")
    with pytest.raises(KeyError, match='no KNNMonitorHook'):
        tool.main([str(no_hook), demo_run['checkpoint']])


def test_visualize_reconstruction(repo_root, demo_run, tmp_path):
    tool = _tool(repo_root, 'visualize_reconstruction')
    out = tmp_path / 'rec.png'
    info = tool.main([
        demo_run['config'], demo_run['checkpoint'], '--num', '2', '--out',
        str(out), '--panel', '1.0', '--dpi', '30'
    ])
    # 2 images x (Com, RCom, low-pass, high-pass) rows, 5 columns
    assert [r['kind'] for r in info['rows']] == \
        ['com', 'rcom', 'lowpass', 'highpass'] * 2
    width_in, height_in = tool.figure_inches(8, 1.0)
    expected = (int(round(height_in * 30)), int(round(width_in * 30)))
    with Image.open(out) as im:
        assert im.format == 'PNG' and (im.height, im.width) == expected
        pixels = np.asarray(im.convert('RGB'))
    assert pixels.std() > 20
    for row in info['rows']:
        assert all(p.shape[:2] == (64, 64) for p in row['panels'])

    # the reconstruction keeps the input's visible frequencies and takes
    # the decoder's on the removed ones
    model = load_pretrained_model(demo_run['config'], demo_run['checkpoint'],
                                  'cpu')
    img = tool.load_rgb01(info['rows'][0]['path'], 64)
    x = torch.from_numpy(img).permute(2, 0, 1)[None]
    r = tool.reconstruct(model, x, 'com', 0.01)
    keep = r['keep']
    spec_rec = torch.fft.fft2(r['reconstruction'].double())
    spec_in = torch.fft.fft2(x[0].double())
    torch.testing.assert_close(
        spec_rec[:, keep], spec_in[:, keep], rtol=1e-4, atol=1e-3)
    assert not torch.allclose(spec_rec[:, ~keep], spec_in[:, ~keep] * 0)


def test_visualize_attention(repo_root, demo_run, tmp_path):
    tool = _tool(repo_root, 'visualize_attention')
    out = tmp_path / 'attn.png'
    info = tool.main([
        demo_run['config'], demo_run['checkpoint'], '--num', '3', '--out',
        str(out), '--panel', '1.0', '--dpi', '30'
    ])
    assert info['weights'] == 'teacher'
    # demo ViT: 3 heads, 64 px / patch 8 = 8 x 8 patches
    assert info['maps'].shape == (3, 3, 8, 8)
    assert info['columns'] == ['image', 'head 1', 'head 2', 'head 3', 'mean']
    width_in, height_in = tool.figure_inches(3, 5, 1.0)
    with Image.open(out) as im:
        assert (im.height, im.width) == (int(round(height_in * 30)),
                                         int(round(width_in * 30)))

    # reference: softmax(q k^T / sqrt(d)) from the last layer's input
    model = load_pretrained_model(demo_run['config'], demo_run['checkpoint'],
                                  'cpu')
    backbone = model.teacher.module.backbone
    x = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    seen = {}
    handle = backbone.layers[-1].ln1.register_forward_hook(
        lambda m, i, o: seen.update(x=o))
    maps = tool.cls_attention(backbone, x)
    handle.remove()
    attn = backbone.layers[-1].attn
    qkv = attn.qkv(seen['x']).reshape(2, 65, 3, 3, 64).permute(2, 0, 3, 1, 4)
    weights = torch.softmax(qkv[0] @ qkv[1].transpose(-2, -1) / 8., dim=-1)
    torch.testing.assert_close(maps, weights[:, :, 0, 1:].reshape(2, 3, 8, 8))
    assert torch.all(maps.sum((-2, -1)) <= 1 + 1e-6)
