"""Resume safety: a changed recipe is refused, and the checkpoint to resume
is chosen (and CRC-verified) once, on rank 0.

With ``resume = True`` a re-run with other ``--cfg-options`` would silently
continue the old run: :class:`SafeCheckpointHook` compares the config stored
in the checkpoint (``meta['cfg']``) with the current one.
"""
import json
import math
import os
import os.path as osp
import socket
import types

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from mmengine.config import Config
from runner_utils import demo_cfg, run

from folk.engine import SafeCheckpointHook, resume_config_changes
from folk.engine.resume_config import parse_config_text

CFG = dict(
    model=dict(type='FOLK', backbone=dict(type='ViT', drop_path_rate=0.1)),
    optim_wrapper=dict(
        optimizer=dict(type='AdamW', lr=1e-3, betas=(0.9, 0.95))),
    param_scheduler=[
        dict(type='LinearLR', end=10),
        dict(type='CosineAnnealingLR', begin=10, end=100)
    ],
    train_cfg=dict(type='IterBasedTrainLoop', max_iters=100),
    train_dataloader=dict(
        batch_size=32,
        num_workers=8,
        dataset=dict(
            type='CustomDataset',
            data_root='data/a',
            pipeline=[dict(type='LoadImageFromFile')])),
    default_hooks=dict(logger=dict(type='LoggerHook', interval=50)),
    work_dir='work_dirs/a')


def _changed(**options) -> Config:
    cfg = Config(CFG)
    cfg.merge_from_dict(options)
    return cfg


# ---------------------------------------------------------------------------
# comparing configs
# ---------------------------------------------------------------------------
def test_same_config_has_no_changes():
    assert resume_config_changes(Config(CFG).pretty_text, Config(CFG)) == {}


def test_training_relevant_changes_are_named_with_values():
    old = Config(CFG).pretty_text
    changes = resume_config_changes(
        old,
        _changed(
            **{
                'optim_wrapper.optimizer.lr': 2e-3,
                'train_dataloader.batch_size': 64,
                'model.backbone.drop_path_rate': 0.0,
            }))
    assert changes == {
        'model.backbone.drop_path_rate': (0.1, 0.0),
        'optim_wrapper.optimizer.lr': (1e-3, 2e-3),
        'train_dataloader.batch_size': (32, 64),
    }
    # a scheduler added, a pipeline step changed
    cfg = Config(CFG)
    cfg.param_scheduler = cfg.param_scheduler[:1]
    cfg.train_dataloader.dataset.pipeline = [
        dict(type='LoadImageFromFileSafe')
    ]
    changes = resume_config_changes(old, cfg)
    assert changes['param_scheduler.<length>'] == (2, 1)
    assert changes['param_scheduler.1.type'][0] == 'CosineAnnealingLR'
    assert changes['train_dataloader.dataset.pipeline.0.type'] == (
        'LoadImageFromFile', 'LoadImageFromFileSafe')


def test_where_and_how_data_are_read_may_change():
    changes = resume_config_changes(
        Config(CFG).pretty_text,
        _changed(
            **{
                'train_dataloader.num_workers': 2,
                'train_dataloader.dataset.data_root': '/mnt/other/a',
                'default_hooks.logger.interval': 1,
                'work_dir': 'elsewhere',
            }))
    assert changes == {}


def test_checkpoint_config_text_is_never_executed(tmp_path):
    marker = tmp_path / 'EXECUTED'
    text = (f"import pathlib\nx = pathlib.Path({str(marker)!r}).touch()\n"
            "model = dict(type='FOLK', depth=-2, size=(1, 2))\n")
    parsed = parse_config_text(text)
    assert not marker.exists()
    assert parsed['model'] == dict(type='FOLK', depth=-2, size=[1, 2])
    assert str(parsed['x']).startswith('pathlib.Path(')  # kept as source


# ---------------------------------------------------------------------------
# the hook, without a Runner
# ---------------------------------------------------------------------------
class _Logger:

    def __init__(self):
        self.warnings = []

    def warning(self, msg):
        self.warnings.append(msg)

    def info(self, msg):
        pass


def _runner(work_dir, cfg, load_from=None):
    return types.SimpleNamespace(
        work_dir=str(work_dir),
        _resume=True,
        _load_from=load_from,
        cfg=cfg,
        logger=_Logger())


def _write_run(work_dir, cfg_text=None, truncate_last=True):
    """iter_1.pth intact, iter_2.pth (named in last_checkpoint) truncated."""
    text = Config(CFG).pretty_text if cfg_text is None else cfg_text
    for it in (1, 2):
        torch.save(
            {
                'meta': {
                    'cfg': text,
                    'iter': it
                },
                'state_dict': {
                    'w': torch.arange(1000.)
                }
            }, osp.join(work_dir, f'iter_{it}.pth'))
    last = osp.join(work_dir, 'iter_2.pth')
    if truncate_last:
        data = open(last, 'rb').read()
        open(last, 'wb').write(data[:len(data) // 2])
    with open(osp.join(work_dir, 'last_checkpoint'), 'w') as f:
        f.write(last)
    return osp.join(work_dir, 'iter_1.pth')


def test_hook_refuses_changed_config_and_names_the_keys(tmp_path):
    _write_run(tmp_path, truncate_last=False)
    runner = _runner(
        tmp_path,
        _changed(**{
            'optim_wrapper.optimizer.lr': 0.1,
            'train_cfg.max_iters': 200
        }))
    with pytest.raises(RuntimeError) as err:
        SafeCheckpointHook(interval=1).before_run(runner)
    msg = str(err.value)
    assert 'optim_wrapper.optimizer.lr: 0.001 -> 0.1' in msg
    assert 'train_cfg.max_iters: 100 -> 200' in msg
    assert 'iter_2.pth' in msg and 'resume_allow_changes=True' in msg
    assert runner._load_from is None


def test_hook_accepts_listed_or_all_changes(tmp_path):
    _write_run(tmp_path, truncate_last=False)
    cfg = _changed(**{
        'optim_wrapper.optimizer.lr': 0.1,
        'train_cfg.max_iters': 200
    })
    # only one of the two accepted: still refused, naming the other
    hook = SafeCheckpointHook(
        interval=1, resume_allow_changes=['train_cfg.max_iters'])
    with pytest.raises(RuntimeError, match='optim_wrapper.optimizer.lr') as e:
        hook.before_run(_runner(tmp_path, cfg))
    assert 'max_iters' not in str(e.value)
    for allowed in (['train_cfg', 'optim_wrapper.optimizer'], True):
        runner = _runner(tmp_path, cfg)
        SafeCheckpointHook(
            interval=1, resume_allow_changes=allowed).before_run(runner)
        assert runner._load_from == osp.join(tmp_path, 'iter_2.pth')
        assert 'optim_wrapper.optimizer.lr: 0.001 -> 0.1' in \
            runner.logger.warnings[-1]
    with pytest.raises(TypeError, match='resume_allow_changes'):
        SafeCheckpointHook(resume_allow_changes='train_cfg')


def test_hook_checks_an_explicit_resume_path_too(tmp_path):
    path = _write_run(tmp_path)
    runner = _runner(
        tmp_path,
        _changed(**{'train_dataloader.batch_size': 8}),
        load_from=path)
    with pytest.raises(RuntimeError, match='train_dataloader.batch_size'):
        SafeCheckpointHook(interval=1).before_run(runner)
    runner = _runner(tmp_path, Config(CFG), load_from=path)
    SafeCheckpointHook(interval=1).before_run(runner)
    assert runner._load_from == path


def test_hook_refuses_a_config_that_mmengine_would_execute(tmp_path):
    """Runner.resume passes meta['config'] to Config.fromstring (exec)."""
    marker = tmp_path / 'EXECUTED'
    code = f'x = open({str(marker)!r}, "w").write("code ran")\n'
    path = str(tmp_path / 'iter_1.pth')
    torch.save(
        {
            'meta': {
                'config': code,
                'cfg': Config(CFG).pretty_text
            },
            'state_dict': {}
        }, path)
    runner = _runner(tmp_path, Config(CFG), load_from=path)
    with pytest.raises(RuntimeError, match="meta\\['config'\\]"):
        SafeCheckpointHook(interval=1).before_run(runner)
    assert not marker.exists()
    Config.fromstring(code, file_format='.py')  # what Runner.resume calls
    assert marker.read_text() == 'code ran'


# ---------------------------------------------------------------------------
# through the Runner with the demo config
# ---------------------------------------------------------------------------
def test_resume_with_changed_lr_stops_unless_accepted(tmp_path,
                                                      imagenette_root):
    # same-config crash recovery: test_train_resume.py, test_sigkill_resume.py
    options = dict(custom_hooks=[dict(type='NonFiniteLossHook')])
    run(demo_cfg(
        tmp_path, imagenette_root, max_iters=4, batch_size=2, **options),
        crash_after=2)
    assert osp.isfile(tmp_path / 'iter_2.pth')
    options['optim_wrapper.optimizer.lr'] = 1e-3  # the demo's is 3e-4
    with pytest.raises(RuntimeError, match='optim_wrapper.optimizer.lr'):
        run(
            demo_cfg(
                tmp_path,
                imagenette_root,
                max_iters=4,
                batch_size=2,
                resume=True,
                **options))
    assert not osp.exists(tmp_path / 'iter_4.pth')  # nothing trained
    options['default_hooks.checkpoint.resume_allow_changes'] = True
    losses, runner = run(
        demo_cfg(
            tmp_path,
            imagenette_root,
            max_iters=4,
            batch_size=2,
            resume=True,
            **options))
    assert sorted(losses) == [3, 4]  # continued the old run
    # MMEngine restored the optimizer and scheduler: the lr follows the old
    # cosine schedule (3e-4 at iteration 0, T_max=4), as the warning says
    lr = runner.optim_wrapper.get_lr()['lr'][0]
    assert lr == pytest.approx(3e-4 * (1 + math.cos(math.pi * 3 / 4)) / 2)


# ---------------------------------------------------------------------------
# two processes (gloo): rank 0 verifies, every rank gets its choice
# ---------------------------------------------------------------------------
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def _rank_worker(rank, world, port, work_dir, out_dir, options):
    os.environ.update(MASTER_ADDR='127.0.0.1', MASTER_PORT=str(port))
    dist.init_process_group('gloo', rank=rank, world_size=world)
    import folk.engine.checkpoint as ckpt_mod
    import folk.engine.hooks as hooks_mod
    calls = dict(verify=0, load=0)
    verify, load = ckpt_mod.verify_checkpoint, hooks_mod.safe_torch_load

    def counting_verify(path):
        calls['verify'] += 1
        return verify(path)

    def counting_load(*args, **kwargs):
        calls['load'] += 1
        return load(*args, **kwargs)

    ckpt_mod.verify_checkpoint = counting_verify
    hooks_mod.safe_torch_load = counting_load
    runner = _runner(work_dir, _changed(**options))
    result = dict(rank=rank)
    try:
        SafeCheckpointHook(interval=1).before_run(runner)
        result['load_from'] = runner._load_from
    except RuntimeError as err:
        result['error'] = str(err)
    result.update(calls)
    with open(osp.join(out_dir, f'rank{rank}.json'), 'w') as f:
        json.dump(result, f)
    dist.destroy_process_group()


def _two_ranks(tmp_path, options):
    work_dir, out_dir = tmp_path / 'run', tmp_path / 'out'
    work_dir.mkdir()
    out_dir.mkdir()
    _write_run(str(work_dir))
    mp.spawn(
        _rank_worker,
        nprocs=2,
        join=True,
        args=(2, _free_port(), str(work_dir), str(out_dir), options))
    return work_dir, [
        json.load(open(out_dir / f'rank{r}.json')) for r in (0, 1)
    ]


def test_auto_resume_verifies_once_and_broadcasts_the_choice(tmp_path):
    work_dir, (rank0, rank1) = _two_ranks(tmp_path, {})
    intact = osp.join(work_dir, 'iter_1.pth')
    assert rank0['load_from'] == rank1['load_from'] == intact
    # rank 0: iter_2 (truncated) and iter_1 verified, iter_1's meta read
    assert (rank0['verify'], rank0['load']) == (2, 1)
    assert (rank1['verify'], rank1['load']) == (0, 0)


def test_rank0_error_reaches_every_rank(tmp_path):
    _, (rank0, rank1) = _two_ranks(tmp_path,
                                   {'optim_wrapper.optimizer.lr': 0.5})
    for result in (rank0, rank1):
        assert 'optim_wrapper.optimizer.lr: 0.001 -> 0.5' in result['error']
    assert rank1['error'].startswith('rank 0 could not resume')
    assert rank1['verify'] == rank1['load'] == 0
