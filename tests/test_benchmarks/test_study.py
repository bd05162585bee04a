"""The Imagenette study (``benchmarks/study``) end to end at its smoke size.

``run_study.py --preset smoke`` runs once per module (a 4-layer 32-d ViT at
32 px, 2 epochs over 80 images, tiny evaluations, 2 CamVid iterations) for
random init (2 seeds), FOLK and the DINO control; the tests check the
outputs and the behaviour of the protocols and variants.
"""
import importlib
import json
import math
import os.path as osp

import arrays
import builders
import numpy as np
import presets
import pytest
import sources
import torch

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
STUDY = osp.join(REPO, 'benchmarks', 'study')


def _study(name: str):
    # benchmarks/study is on pytest's pythonpath (setup.cfg)
    return importlib.import_module(name)


def _data_args(imagenette_root, camvid_root):
    packs = osp.join(osp.dirname(imagenette_root), 'packs')
    data = osp.join(packs, 'imagenette64.zip')
    cam = osp.join(packs, 'camvid240.zip')
    return [
        '--data', data if osp.exists(data) else imagenette_root, '--camvid',
        cam if osp.exists(cam) else camvid_root
    ]


@pytest.fixture(scope='module')
def study(tmp_path_factory, imagenette_root, camvid_root):
    out = tmp_path_factory.mktemp('study')
    run_study = _study('run_study')
    threads = torch.get_num_threads()
    args = [
        '--preset', 'smoke', '--device', 'cpu', '--threads', '1', '--variants',
        'scratch,folk,dino', '--out-dir',
        str(out), '--work-dir',
        str(out / 'work'), '--set', 'seeds=2', 'seeds_single=1'
    ] + _data_args(imagenette_root, camvid_root)
    try:
        results = run_study.main(args)
    finally:
        torch.set_num_threads(threads)
    with open(out / 'imagenette_study_smoke.json') as f:
        saved = json.load(f)
    return out, results, saved


def _finite(x):
    return isinstance(x, (int, float)) and math.isfinite(x)


def _strings(obj):
    if isinstance(obj, str):
        yield obj
    elif isinstance(obj, dict):
        for k, v in obj.items():
            yield from _strings(k)
            yield from _strings(v)
    elif isinstance(obj, (list, tuple)):
        for v in obj:
            yield from _strings(v)


def test_outputs_and_relative_paths(study):
    out, _, saved = study
    for ext in ('json', 'md', 'png'):
        path = out / f'imagenette_study_smoke.{ext}'
        assert path.is_file() and path.stat().st_size > 0
    with open(out / 'imagenette_study_smoke.png', 'rb') as f:
        assert f.read(8) == b'\x89PNG\r\n\x1a\n'
    # published files hold repository-relative paths only
    for s in _strings(saved):
        assert not s.startswith('/'), s
    assert not osp.isabs(saved['data']['imagenette']['source'])
    assert saved['command'].startswith('python benchmarks/study/')
    assert saved['finished'] is not None


def test_every_run_has_every_metric(study):
    _, _, saved = study
    assert set(saved['variants']) == {'scratch', 'folk', 'dino'}
    assert list(saved['variants']['folk']['seeds']) == ['0', '1']
    assert list(saved['variants']['scratch']['seeds']) == ['0', '1']
    assert list(saved['variants']['dino']['seeds']) == ['0']
    for name, var in saved['variants'].items():
        for run in var['seeds'].values():
            for metric in ('knn', 'knn_patch', 'linear', 'linear_patch',
                           'ft10', 'ft100', 'miou'):
                assert _finite(run[metric]), (name, metric)
                assert 0.0 <= run[metric] <= 1.0, (name, metric)
        s = var['summary']['knn']
        vals = [r['knn'] for r in var['seeds'].values()]
        assert s['mean'] == pytest.approx(np.mean(vals))
        assert s['n'] == len(vals)
        if len(vals) > 1:
            assert s['std'] == pytest.approx(np.std(vals, ddof=1))


def test_scratch_is_not_trained(study, imagenette_root):
    """Random init: no pre-training, and its k-NN is the package's k-NN of
    the seeded random backbone."""
    _, res, saved = study
    knn = _study('knn')
    run = saved['variants']['scratch']['seeds']['1']
    assert run['pretrain_time_s'] == 0.0 and run['weights'] == 'random'
    assert run['knn_curve'] == [] and run['final_loss_freq'] is None
    p = dict(res['config'])
    packs = osp.join(osp.dirname(imagenette_root), 'packs', 'imagenette64.zip')
    data = sources.load_data(p,
                             packs if osp.exists(packs) else imagenette_root)
    weights = builders.random_backbone(p, 1)
    feats = knn.extract_features(weights, p, data, torch.device('cpu'))
    from folk.evaluation import knn_top1
    for metric, pool in (('knn', 'cls'), ('knn_patch', 'patch')):
        expected = knn_top1(*feats[pool], num_classes=10, k=p['knn_k']) / 100.
        assert run[metric] == pytest.approx(expected)
    # the two random seeds are different networks
    key = 'layers.0.attn.qkv.weight'
    assert not torch.equal(weights[key], builders.random_backbone(p, 0)[key])


def test_pretrained_runs_record_curves(study):
    _, _, saved = study
    for name in ('folk', 'dino'):
        run = saved['variants'][name]['seeds']['0']
        assert run['weights'] == 'teacher'
        assert run['pretrain_time_s'] > 0 and run['iters'] > 0
        # online k-NN of teacher and student after each of the 2 epochs
        curve = run['knn_curve']
        assert [c['epoch'] for c in curve] == [1.0, 2.0]
        for c in curve:
            assert 0 <= c['teacher'] <= 1 and 0 <= c['student'] <= 1
        assert _finite(run['final_loss_distill'])
        assert len(run['curves']['loss_distill']) == len(
            run['curves']['iter']) > 0
        assert _finite(run['knn_student'])
    # the DINO control has no frequency loss: nothing is masked
    assert saved['variants']['dino']['seeds']['0']['final_loss_freq'] == 0
    assert saved['variants']['folk']['seeds']['0']['final_loss_freq'] > 0


def test_markdown_reports_table_and_targets(study):
    out, _, saved = study
    md = (out / 'imagenette_study_smoke.md').read_text()
    for var in saved['variants'].values():
        assert var['label'] in md
    assert saved['command'] in md
    assert 'FOLK k-NN [CLS] >= No pre-training + 10' in md
    # MFM was not run: its targets are reported as not measured
    assert 'not measured' in md
    rows = {(t['metric'], t['reference']): t for t in saved['targets']}
    t = rows[('knn', 'scratch')]
    assert t['difference'] == pytest.approx(t['value'] - t['reference_value'])
    assert t['met'] == (t['difference'] >= 10)
    assert rows[('knn', 'mfm')]['met'] is None


def _config(name: str, scale=None):
    return _study('study_configs').variant_config(name, scale)


def test_variants_are_config_overrides():
    """Each control is the package's FOLK / MFM with one ingredient off,
    each a config under configs/study on the shipped bases."""
    from mmpretrain.registry import MODELS
    names = ('folk', 'dino', 'folk_nofreqloss', 'folk_nodistill', 'mfm',
             'scratch')
    for name in names:
        assert osp.isfile(osp.join(REPO, 'configs', 'study', f'{name}.py'))
    assert set(presets.VARIANTS) == set(names)
    cfgs = {name: _config(name) for name in names}
    built = {
        name: MODELS.build(cfg.model)
        for name, cfg in cfgs.items() if name != 'scratch'
    }
    assert type(built['folk']).__name__ == 'FOLK'
    assert type(built['folk_nodistill']).__name__ == 'MFM'
    assert type(built['mfm']).__name__ == 'MFM'
    assert built['folk'].head.loss_module.loss_weight == 1.0
    assert built['folk_nofreqloss'].head.loss_module.loss_weight == 0.0
    assert built['dino'].head.loss_module.loss_weight == 0.0
    # the pre-training configs' route: FOLK's crops and photometric
    # augmentation on the device (their parameters packed), MFM's crop and
    # flip in the workers, stacked by default_collate
    for name, cfg in cfgs.items():
        loader = cfg.train_dataloader
        collate = 'default_collate' if name == 'mfm' else 'folk_views_collate'
        assert loader.collate_fn == dict(type=collate), name
        assert loader.dataset.type == 'ArrayDataset', name
        views = loader.dataset.pipeline[0]
        if name == 'mfm':
            assert (views.photometric, views.num_views) == ('none', 1)
            assert views.get('crop', 'cpu') == 'cpu'
        else:
            assert (views.photometric, views.crop) == ('device', 'device')
            packed = loader.dataset.pipeline[-1].meta_keys
            assert {'photometric_params', 'crop_params'} <= set(packed)
    # filters: DINO keeps every coefficient, the others use FOLK's / MFM's
    sc = _study('study_configs')
    assert sc.variant_filters(
        cfgs['dino']) == [dict(kind='com', prob=1.0, ratios=(1.0, ))]
    assert {f['kind']
            for f in sc.variant_filters(cfgs['folk'])} == {'com', 'rcom'}
    radial = sc.variant_filters(cfgs['mfm'])
    assert radial[0]['radius'] == pytest.approx(16 * 32 / 224)
    from folk.frequency import filter_images
    x = torch.rand(2, 3, 32, 32)
    out, kept = filter_images(x, torch.tensor([0, 0]), torch.tensor([1.0,
                                                                     1.0]))
    assert kept.all()
    torch.testing.assert_close(out, x, atol=1e-5, rtol=0)


def test_presets_resize_the_configs():
    """The gpu preset resizes every size that follows the crop or width."""
    sc = _study('study_configs')
    scale = presets.PRESETS['gpu']['scale']
    folk, mfm = _config('folk', scale), _config('mfm', scale)
    assert sc.scale_of(folk) == dict(
        img_size=64,
        patch=8,
        embed=192,
        layers=6,
        heads=3,
        ffn=768,
        epochs=20,
        batch=256,
        lr=5e-4,
        teacher_momentum=0.996,
        teacher_momentum_end=1.0,
        out_dim=1024,
        teacher_temp=0.04)
    views = folk.train_dataloader.dataset.pipeline[0]
    assert views.blur_sigma == pytest.approx((0.1 * 64 / 224, 2 * 64 / 224))
    assert sc.variant_filters(mfm)[0]['radius'] == pytest.approx(16 * 64 / 224)
    assert folk.model.neck.in_channels == folk.model.projector.in_channels \
        == 192
    assert folk.model.distill_head.loss.out_dim == 1024
    knn = [h for h in folk.custom_hooks if h['type'] == 'KNNMonitorHook'][0]
    assert knn['pipeline'][1]['crop_size'] == 64
    assert folk.param_scheduler[1]['end'] == 20
    from mmpretrain.registry import MODELS
    model = MODELS.build(folk.model)
    with torch.no_grad():
        assert model.backbone(torch.rand(1, 3, 64,
                                         64))[0].shape == (1, 65, 192)


def test_runner_config_is_the_launchers_cpu_route():
    pretrain = _study('pretrain')
    p = presets.make_preset('smoke')
    cfg, total = pretrain.runner_config(
        _config('folk', p['scale']), 'folk', p, 3, '/tmp/unused', 40,
        torch.device('cpu'))
    assert cfg.train_dataloader.batch_size == 16 and total == 2 * 2
    assert cfg.randomness == dict(seed=3)
    assert cfg.train_dataloader.sampler.seed == 3
    # folk.engine.adapt_cfg_to_device, as tools/train.py on a CPU host
    assert cfg.optim_wrapper.type == 'OptimWrapper'
    knn = [h for h in cfg.custom_hooks if h['type'] == 'KNNMonitorHook'][0]
    assert knn['interval'] == 2


def test_array_dataset_and_presets():
    imgs = np.arange(2 * 4 * 4 * 3, dtype=np.uint8).reshape(2, 4, 4, 3)
    arrays.register_arrays('t', imgs, np.array([3, 7]))
    ds = arrays.ArrayDataset('t', indices=[1])
    assert len(ds) == 1
    item = ds.get_data_info(0)
    np.testing.assert_array_equal(item['img'], imgs[1])
    assert item['gt_label'] == 7 and item['img_shape'] == (4, 4)
    with pytest.raises(KeyError, match='nope'):
        arrays.ArrayDataset('nope')
    with pytest.raises(ValueError, match='uint8'):
        arrays.register_arrays('bad', imgs.astype(np.float32))
    with pytest.raises(ValueError, match='unknown preset keys'):
        presets.make_preset('smoke', dict(epoch=3))
    # a scale key resizes the configs (here: the schedule) from --set
    p = presets.make_preset('cpu', dict(epochs=4))
    assert p['scale'] == dict(epochs=4)
    cfg = _config('folk', p['scale'])
    assert cfg.train_cfg.max_epochs == cfg.param_scheduler[1]['end'] == 4
    assert presets.parse_set(['lr=1e-3', 'ratios=(0.1,0.2)', 'x=abc']) == \
        dict(lr=1e-3, ratios=(0.1, 0.2), x='abc')


def test_fewshot_subset_is_the_tools_rule():
    paths = [f'c{c}/img{i}.jpg' for c in range(3) for i in range(20)]
    labels = np.repeat(np.arange(3), 20)
    idx = sources.fewshot_indices(paths, labels, 0.1)
    assert len(idx) == 6
    assert np.bincount(labels[idx]).tolist() == [2, 2, 2]
    assert idx.tolist() == sources.fewshot_indices(paths, labels, 0.1).tolist()


def test_schedule_runs_seed_zero_first():
    run_study = _study('run_study')
    p = dict(seeds=2, seeds_single=1)
    runs = run_study.schedule(['scratch', 'folk', 'mfm'], p)
    assert runs == [(0, 'scratch'), (0, 'folk'), (0, 'mfm'), (1, 'scratch'),
                    (1, 'folk')]


def test_both_poolings_come_from_one_forward():
    """The frozen protocols read the [CLS] token and the patch mean."""
    knn = _study('knn')
    p = _study('study_configs').study_preset('smoke')
    vit = builders.build_backbone(p, builders.random_backbone(p, 0), 'cpu')
    x = torch.rand(3, 3, p['img_size'], p['img_size'])
    from folk.evaluation import global_features
    both = global_features(knn.BothPoolings(vit), x)
    labels = torch.arange(3)
    feats = knn.split_poolings((both, labels, both, labels))
    with torch.no_grad():
        tokens = vit(x)[-1]
    torch.testing.assert_close(feats['cls'][0], tokens[:, 0])
    torch.testing.assert_close(feats['patch'][0], tokens[:, 1:].mean(1))


def test_replot_writes_the_docs_block(study, tmp_path):
    """``--replot JSON --docs PAGE`` rewrites only the marked block."""
    out, _, saved = study
    run_study = _study('run_study')
    page = tmp_path / 'study.md'
    page.write_text('intro\n<!-- study results smoke: begin (run_study.py '
                    '--docs) -->\nold\n<!-- study results smoke: end -->\n'
                    'after\n')
    run_study.main([
        '--replot',
        str(out / 'imagenette_study_smoke.json'), '--docs',
        str(page)
    ])
    text = page.read_text()
    assert text.startswith('intro\n') and text.endswith('after\n')
    assert 'old' not in text and saved['command'] in text
    assert '| FOLK (Com/RCom + distill) | 2 |' in text
    other = tmp_path / 'other.md'
    other.write_text('no markers\n')
    with pytest.raises(SystemExit):
        run_study.main([
            '--replot',
            str(out / 'imagenette_study_smoke.json'), '--docs',
            str(other)
        ])
    assert other.read_text() == 'no markers\n'


def test_camvid_is_the_shipped_tiny_config():
    """segment.py trains configs/benchmarks/segmentation's tiny CamVid
    config with the study's sizes, on arrays decoded once."""
    segment = _study('segment')
    p = _study('study_configs').study_preset('smoke')
    cfg = segment.runner_config(p, '/tmp/unused.pth', 0, '/tmp/unused',
                                torch.device('cpu'))
    assert osp.basename(segment.CONFIG) == \
        'upernet_vit-tiny-p8_folk-pre_1xb4-200i_camvid-128x128.py'
    assert cfg.model.type == 'EncoderDecoder'
    assert cfg.model.pretrained == '/tmp/unused.pth'
    assert cfg.model.backbone.embed_dims == p['embed']
    assert cfg.model.backbone.out_indices == (0, 1, 2, 3)
    assert cfg.model.decode_head.in_channels == [p['embed']] * 4
    assert cfg.train_cfg.max_iters == p['seg_iters']
    assert cfg.param_scheduler[1]['end'] == p['seg_iters']
    assert any(h['type'] == 'PretrainedKeysCheckHook'
               for h in cfg.custom_hooks)
    train = cfg.train_dataloader.dataset
    assert train.type == 'ArraySegDataset'
    kinds = [t['type'] for t in train.pipeline]
    assert kinds[0] == 'RandomResize' and 'LoadImageFromFile' not in kinds
    assert 'PhotoMetricDistortion' in kinds  # the shipped pipeline
    imgs = np.zeros((2, 6, 8, 3), np.uint8)
    lbls = np.full((2, 6, 8), 255, np.uint8)
    segment.register_seg_arrays('t', imgs, lbls)
    info = segment.ArraySegDataset('t').get_data_info(1)
    assert info['seg_fields'] == ['gt_seg_map']
    assert info['gt_seg_map'].shape == (6, 8) and info['img_shape'] == (6, 8)
    with pytest.raises(ValueError, match='labels'):
        segment.register_seg_arrays('bad', imgs, lbls[:, :3])


def test_finetuning_is_the_shipped_tiny_config():
    finetune = _study('finetune')
    p = _study('study_configs').study_preset('smoke')
    cfg = finetune.runner_cfg(p, '/tmp/unused.pth', 'tr', range(40), 'va', 3,
                              0, '/tmp/unused', torch.device('cpu'))
    assert osp.basename(finetune.CONFIG) == \
        'vit-tiny-p8_folk-pre_1xb32-100i_imagenette128.py'
    vit = cfg.model.backbone
    assert (vit.arch.embed_dims, vit.img_size) == (p['embed'], p['img_size'])
    assert vit.out_type == 'avg_featmap'  # the stated pooling
    assert vit.init_cfg.checkpoint == '/tmp/unused.pth'
    assert cfg.model.train_cfg is None  # no mixup / cutmix
    assert cfg.train_cfg.max_iters == 3 * (40 // 16)
    assert cfg.optim_wrapper.paramwise_cfg.layer_decay_rate == \
        p['ft_layer_decay']
    assert cfg.optim_wrapper.type == 'OptimWrapper'  # CPU host
    assert [h['type'] for h in cfg.custom_hooks] == ['PretrainedKeysCheckHook']


@pytest.mark.parametrize('name', ['folk', 'mfm'])
def test_config_batches_reach_the_preprocessor(name):
    """A batch of the variant's loader (pipeline + collate) is what its
    FrequencyFilterPreprocessor takes (the worker-crop route of MFM needs
    stacked views)."""
    from mmengine.registry import FUNCTIONS
    from mmpretrain.registry import MODELS
    cfg = _config(name, presets.PRESETS['smoke']['scale'])
    imgs = np.random.default_rng(0).integers(
        0, 256, (4, 48, 48, 3), dtype=np.uint8)
    arrays.register_arrays('study_train', imgs)
    dataset = arrays.ArrayDataset(
        'study_train', pipeline=cfg.train_dataloader.dataset.pipeline)
    collate = FUNCTIONS.get(cfg.train_dataloader.collate_fn['type'])
    pre = MODELS.build(cfg.data_preprocessor)
    out = pre(collate([dataset[i] for i in range(4)]), training=True)
    views = out['inputs']['views']
    assert len(views) == (1 if name == 'mfm' else 2)
    assert views[0].shape == (4, 3, 32, 32)
