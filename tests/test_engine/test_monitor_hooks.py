"""KNNMonitorHook and CollapseMonitorHook, alone and in a demo run."""
import copy
import glob
import json
import logging
import math
import os.path as osp
from types import SimpleNamespace

import pytest
import torch
from _tiny import TINY_FOLK, build, set_schedule
from mmengine.config import Config
from mmengine.runner import Runner
from mmpretrain.registry import HOOKS, MODELS
from runner_utils import demo_cfg

from folk.engine import CollapseMonitorHook, KNNMonitorHook

K = 64
REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


class _Logger:
    """Collects what a hook logs."""

    def __init__(self):
        self.warnings, self.infos = [], []

    def warning(self, msg):
        self.warnings.append(msg)

    def info(self, msg):
        self.infos.append(msg)


def _stub_runner(model, iteration, batch_size=32):
    return SimpleNamespace(
        model=model,
        iter=iteration,
        logger=_Logger(),
        train_dataloader=SimpleNamespace(batch_size=batch_size))


def _outputs(loss, teacher):
    """What train_step returns for these teacher logits (2 views)."""
    student = [torch.zeros_like(t) for t in teacher]
    value, stats = loss(student, teacher)
    return dict(loss_distill=value, **stats)


@pytest.fixture
def loss():
    set_schedule()
    return MODELS.build(dict(type='DistillLoss', out_dim=K)).eval()


def test_collapse_to_uniform_is_named(loss):
    hook = CollapseMonitorHook(interval=10)
    runner = _stub_runner(loss, iteration=19)  # iteration 20: checked
    # every image gets the same logits: a uniform teacher
    outputs = _outputs(loss, [torch.zeros(32, K), torch.zeros(32, K)])
    hook.after_train_iter(runner, 0, None, outputs)
    assert hook.last['collapse'] == 'uniform'
    (msg, ) = runner.logger.warnings
    assert 'to a uniform output at iteration 20' in msg
    assert f"{math.log(K):.3f}" in msg and '100.0% of ln K' in msg
    # not checked between intervals
    runner.iter = 20
    hook.after_train_iter(runner, 0, None, outputs)
    assert len(runner.logger.warnings) == 1 and hook.num_checks == 1


def test_collapse_onto_one_prototype_is_named(loss):
    hook = CollapseMonitorHook(interval=1)
    runner = _stub_runner(loss, iteration=6)
    one_hot = torch.zeros(32, K)
    one_hot[:, 5] = 10.  # every image on prototype 5
    outputs = _outputs(loss, [one_hot, one_hot])
    hook.after_train_iter(runner, 0, None, outputs)
    assert hook.last['collapse'] == 'few prototypes'
    (msg, ) = runner.logger.warnings
    assert 'onto few prototypes at iteration 7' in msg
    assert 'about 1.0 of K = 64 prototypes' in msg


def test_healthy_teacher_is_silent(loss):
    hook = CollapseMonitorHook(interval=1)
    runner = _stub_runner(loss, iteration=0, batch_size=32)
    # each image sharply on its own prototype: 64 prototypes in use
    logits = torch.zeros(64, K)
    logits[torch.arange(64), torch.arange(64)] = 1.
    outputs = _outputs(loss, [logits[:32], logits[32:]])
    hook.after_train_iter(runner, 0, None, outputs)
    assert hook.last['collapse'] is None and not runner.logger.warnings
    assert math.exp(hook.last['teacher_marginal_entropy']) == \
        pytest.approx(64, rel=1e-3)
    # two images per prototype: 32 in use, fewer than a strict threshold
    pairs = torch.zeros(64, K)
    pairs[torch.arange(64), torch.arange(64) // 2] = 1.
    outputs = _outputs(loss, [pairs[:32], pairs[32:]])
    hook.after_train_iter(runner, 0, None, outputs)
    assert hook.last['collapse'] is None
    strict = CollapseMonitorHook(interval=1, prototype_ratio=1.0)
    strict.after_train_iter(
        _stub_runner(loss, 0, batch_size=64), 0, None, outputs)
    assert strict.last['collapse'] == 'few prototypes'


def test_collapse_hook_without_distillation_says_so_once(loss):
    hook = CollapseMonitorHook(interval=1)
    runner = _stub_runner(torch.nn.Linear(2, 2), iteration=0)  # MFM-like
    for _ in range(3):
        hook.after_train_iter(runner, 0, None, dict(loss_freq=torch.ones(())))
    assert not runner.logger.warnings and hook.num_checks == 0
    assert len(runner.logger.infos) == 1
    assert 'nothing to check' in runner.logger.infos[0]
    # a distillation model that does not log the entropies: one warning
    hook = CollapseMonitorHook(interval=1)
    runner = _stub_runner(loss, iteration=0)
    for _ in range(3):
        hook.after_train_iter(runner, 0, None, dict(loss_freq=torch.ones(())))
    assert len(runner.logger.warnings) == 1
    assert 'collapse check is off' in runner.logger.warnings[0]


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match='interval'):
        CollapseMonitorHook(interval=0)
    with pytest.raises(ValueError, match='uniform_ratio'):
        CollapseMonitorHook(uniform_ratio=1.5)
    knn = dict(
        bank=dict(type='CustomDataset'),
        query=dict(type='CustomDataset'),
        pipeline=[])
    with pytest.raises(ValueError, match='encoders'):
        KNNMonitorHook(encoders=('ema', ), **knn)
    with pytest.raises(ValueError, match='interval'):
        KNNMonitorHook(interval=0, **knn)
    with pytest.raises(ValueError, match='bank must be a dataset config'):
        KNNMonitorHook(**dict(knn, bank='train.txt'))


def test_knn_backbones_of_folk_and_mfm():
    folk = build()
    assert KNNMonitorHook.backbones(folk) == {
        'student': folk.backbone,
        'teacher': folk.teacher.module.backbone
    }
    cfg = {
        k: v
        for k, v in TINY_FOLK.items() if k not in ('projector', 'distill_head')
    }
    mfm = build(dict(cfg, type='MFM'))
    assert KNNMonitorHook.backbones(mfm) == {'student': mfm.backbone}


class _Records(logging.Handler):

    def __init__(self):
        super().__init__(logging.WARNING)
        self.messages = []

    def emit(self, record):
        self.messages.append(record.getMessage())


def test_demo_run_logs_knn_and_entropy_and_stays_silent(
        tmp_path, imagenette_root):
    cfg = demo_cfg(
        tmp_path, imagenette_root, max_iters=3, batch_size=16, ckpt_every=3)
    hooks = {h['type']: h for h in cfg.custom_hooks}
    knn = hooks['KNNMonitorHook']
    knn.update(bank_per_class=2, query_per_class=2, interval=2, batch_size=20)
    for split in ('bank', 'query'):
        knn[split]['data_root'] = str(imagenette_root)
    hooks['CollapseMonitorHook'].update(interval=1)
    runner = Runner.from_cfg(cfg)
    records = _Records()
    runner.logger.addHandler(records)
    runner.train()
    runner.logger.removeHandler(records)

    collapse = next(
        h for h in runner.hooks if isinstance(h, CollapseMonitorHook))
    assert collapse.num_checks == 3 and collapse.last['iter'] == 3
    assert collapse.last['collapse'] is None
    assert not [m for m in records.messages if 'collapsed' in m]
    # the entropies are in (0, ln K]
    assert 0 < collapse.last['teacher_entropy'] <= math.log(1024) + 1e-4

    # k-NN at iteration 2 (interval) and 3 (end); entropies every iteration
    scalars = osp.join(runner.log_dir, 'vis_data', 'scalars.json')
    with open(scalars) as f:
        rows = [json.loads(line) for line in f]
    knn_rows = [r for r in rows if 'knn/teacher_top1' in r]
    assert [r['step'] for r in knn_rows] == [2, 3]
    for r in knn_rows:
        assert 0 <= r['knn/teacher_top1'] <= 100
        assert 0 <= r['knn/student_top1'] <= 100
    train_rows = [r for r in rows if 'loss' in r]
    assert len(train_rows) == 3
    assert all('teacher_entropy' in r and 'teacher_marginal_entropy' in r
               for r in train_rows)
    hub = runner.message_hub.get_scalar('knn/teacher_top1')
    assert hub.current() == knn_rows[-1]['knn/teacher_top1']
    monitor = next(h for h in runner.hooks if isinstance(h, KNNMonitorHook))
    assert monitor.last['iter'] == 3
    assert monitor.evaluator.sizes() == (20, 20)


PRETRAIN_CONFIGS = sorted(
    glob.glob(osp.join(REPO, 'configs', 'folk', '*.py')) +
    glob.glob(osp.join(REPO, 'configs', 'mfm', '*.py')) +
    glob.glob(osp.join(REPO, 'configs', 'demo', '*.py')) +
    [osp.join(REPO, 'configs', 'folk_vit-b.py')])


@pytest.mark.parametrize(
    'path', PRETRAIN_CONFIGS, ids=lambda p: osp.relpath(p, REPO))
def test_every_pretrain_config_monitors(path):
    cfg = Config.fromfile(path)
    hooks = {h['type']: h for h in cfg.custom_hooks}
    if path.endswith('_custom.py'):
        # own images without labels: entropy and effective rank, no k-NN
        assert {'RankMeHook', 'CollapseMonitorHook'} <= set(hooks)
        assert 'KNNMonitorHook' not in hooks
        assert cfg.train_dataloader.dataset.type == 'ImageFolderDataset'
        HOOKS.build(copy.deepcopy(hooks['RankMeHook']))
        HOOKS.build(copy.deepcopy(hooks['CollapseMonitorHook']))
        return
    assert {'KNNMonitorHook', 'CollapseMonitorHook'} <= set(hooks)
    knn = HOOKS.build(copy.deepcopy(hooks['KNNMonitorHook']))
    assert knn.encoders == ('teacher', 'student')
    HOOKS.build(copy.deepcopy(hooks['CollapseMonitorHook']))
    if 'demo' in path:
        assert knn.interval == 100
        assert hooks['KNNMonitorHook']['bank']['ann_file'] == 'train.txt'
    else:  # ImageNet, like the training data
        assert knn.interval == 2500
        train = cfg.train_dataloader.dataset
        for split, hook_split in (('train', 'bank'), ('val', 'query')):
            data = hooks['KNNMonitorHook'][hook_split]
            assert data['type'] == train['type'] == 'ImageNet'
            assert data['data_root'] == train['data_root']
            assert data['split'] == split


def test_knn_monitor_does_not_compile_graphs_of_compiled_backbones():
    """With compile_backbone, the k-NN pass runs the backbones eagerly."""
    set_schedule()
    graphs = []

    def backend(gm, example_inputs):
        graphs.append(gm)
        return gm.forward

    model = build(compile_backbone=dict(backend=backend))
    from _tiny import make_batch
    model.train()
    model(**model.data_preprocessor(make_batch(), True), mode='loss')
    trained = len(graphs)
    assert trained > 0  # the training graphs

    hook = KNNMonitorHook(
        bank=dict(type='CustomDataset', data_root='.'),
        query=dict(type='CustomDataset', data_root='.'),
        pipeline=[])
    calls = []

    class Evaluator:
        k = 20

        def evaluate_many(self, backbones, preprocess, amp):
            with torch.no_grad():
                for backbone in backbones.values():
                    for batch in (5, 3):  # other sizes, eval, no_grad
                        calls.append(backbone(torch.randn(batch, 3, 32, 32)))
            return dict(
                top1={n: 0.0
                      for n in backbones},
                num_bank=0,
                num_query=0,
                seconds=0.0)

    hook.evaluator = Evaluator()
    runner = SimpleNamespace(
        model=model,
        iter=9,
        logger=_Logger(),
        optim_wrapper=None,
        message_hub=SimpleNamespace(update_scalar=lambda *a: None),
        visualizer=SimpleNamespace(add_scalars=lambda *a, **k: None))
    hook.evaluate(runner)
    assert len(calls) == 4 and model.training
    assert len(graphs) == trained, 'the k-NN pass compiled new graphs'
    # the training graphs are used again afterwards, without recompiling
    model(**model.data_preprocessor(make_batch(), True), mode='loss')
    assert len(graphs) == trained
