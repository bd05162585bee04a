"""Train a FOLK / MFM model (or any MMPretrain config) with MMEngine's Runner.

Same arguments as MMPretrain's ``tools/train.py``. On a machine without
CUDA the config is adapted so that the same config runs on CPU (see
:func:`folk.engine.adapt_cfg_to_device`).
"""
import argparse
import os
import os.path as osp

from mmengine.config import Config, DictAction
from mmengine.registry import RUNNERS
from mmengine.runner import Runner


def parse_args():
    parser = argparse.ArgumentParser(description='Train a model')
    parser.add_argument('config', help='train config file path')
    parser.add_argument('--work-dir', help='the dir to save logs and models')
    parser.add_argument(
        '--resume',
        nargs='?',
        type=str,
        const='auto',
        help='If specify checkpoint path, resume from it, while if not '
        'specify, try to auto resume from the latest checkpoint '
        'in the work directory. With SafeCheckpointHook (the FOLK / MFM '
        'configs) auto-resume skips truncated or corrupt checkpoints, and a '
        'resume whose config differs from the checkpoint\'s in '
        'training-relevant keys (model, optimizer, schedule, train loop, '
        'training data) stops with the list of changed keys; accept them '
        'with --cfg-options '
        'default_hooks.checkpoint.resume_allow_changes=True.')
    parser.add_argument(
        '--amp',
        action='store_true',
        help='enable automatic-mixed-precision training')
    parser.add_argument(
        '--no-validate',
        action='store_true',
        help='whether not to evaluate the checkpoint during training')
    parser.add_argument(
        '--auto-scale-lr',
        action='store_true',
        help='whether to auto scale the learning rate according to the '
        'actual batch size and the original batch size.')
    parser.add_argument(
        '--no-pin-memory',
        action='store_true',
        help='whether to disable the pin_memory option in dataloaders.')
    parser.add_argument(
        '--no-persistent-workers',
        action='store_true',
        help='whether to disable the persistent_workers option in '
        'dataloaders.')
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        action=DictAction,
        help='override some settings in the used config, the key-value pair '
        'in xxx=yyy format will be merged into config file.')
    parser.add_argument(
        '--launcher',
        choices=['none', 'pytorch', 'slurm', 'mpi'],
        default='none',
        help='job launcher')
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)
    args = parser.parse_args()
    if 'LOCAL_RANK' not in os.environ:
        os.environ['LOCAL_RANK'] = str(args.local_rank)
    return args


def merge_args(cfg, args):
    """Merge CLI arguments into the config."""
    if args.no_validate:
        cfg.val_cfg = None
        cfg.val_dataloader = None
        cfg.val_evaluator = None
    cfg.launcher = args.launcher
    if args.work_dir is not None:
        cfg.work_dir = args.work_dir
    elif cfg.get('work_dir', None) is None:
        cfg.work_dir = osp.join('./work_dirs',
                                osp.splitext(osp.basename(args.config))[0])
    if args.amp:
        cfg.optim_wrapper.type = 'AmpOptimWrapper'
        cfg.optim_wrapper.setdefault('loss_scale', 'dynamic')
    if args.resume == 'auto':
        cfg.resume = True
        cfg.load_from = None
    elif args.resume is not None:
        cfg.resume = True
        cfg.load_from = args.resume
    if args.auto_scale_lr:
        cfg.auto_scale_lr.enable = True

    def set_loader_option(key, value):
        for name in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
            loader = cfg.get(name, None)
            if loader is not None and key in loader:
                loader[key] = value

    if args.no_pin_memory:
        set_loader_option('pin_memory', False)
    if args.no_persistent_workers:
        set_loader_option('persistent_workers', False)
    if args.cfg_options is not None:
        cfg.merge_from_dict(args.cfg_options)
    return cfg


def log_lr_scaling(cfg, world_size: int, logger) -> None:
    """Log the base learning rate the run trains at.

    MMEngine's Runner multiplies the optimizer's lr by
    ``world_size * batch_size / auto_scale_lr.base_batch_size`` when
    ``auto_scale_lr.enable`` is true (``Runner.scale_lr``, before the
    schedulers are built) but logs only the ratio. Without scaling, a total
    batch other than the base one is warned about.
    """
    lr = cfg.get('optim_wrapper', {}).get('optimizer', {}).get('lr')
    batch = (cfg.get('train_dataloader') or {}).get('batch_size')
    scale = cfg.get('auto_scale_lr') or {}
    base = scale.get('base_batch_size')
    if lr is None or batch is None or base is None:
        return
    total = world_size * batch
    if scale.get('enable', False):
        logger.info(f'auto_scale_lr: total batch {total} ({world_size} '
                    f'process(es) x {batch}), base batch {base}: base lr '
                    f'{lr:g} x {total / base:g} = {lr * total / base:g}')
    elif total != base:
        logger.warning(f'total batch {total} ({world_size} x {batch}) but '
                       f'the lr {lr:g} is meant for {base} and auto_scale_lr'
                       f' is disabled: training at lr {lr:g}')


def main():
    args = parse_args()
    # applies the compatibility fixes and registers FOLK's modules
    from folk.datasets import TrainDataError
    from folk.engine import adapt_cfg_to_device, prepare_train_cfg
    from folk.engine.launch import (FinishedRunHook, check_cfg_options,
                                    check_optim_wrapper, lock_work_dir)

    cfg = Config.fromfile(args.config)
    check_cfg_options(cfg, args.cfg_options)
    cfg = merge_args(cfg, args)
    try:
        cfg = prepare_train_cfg(cfg)
    except TrainDataError as err:
        raise SystemExit(f'{args.config}: {err}') from None
    check_optim_wrapper(cfg)
    cfg = adapt_cfg_to_device(cfg)
    lock = lock_work_dir(cfg)  # noqa: F841 - held until the process ends
    # as MMPretrain's tools/train.py: `runner_type` (e.g. FlexibleRunner
    # with an FSDP or DeepSpeed strategy) is honoured
    if 'runner_type' not in cfg:
        runner = Runner.from_cfg(cfg)
    else:
        runner = RUNNERS.build(cfg)
    runner.register_hook(FinishedRunHook())
    runner.logger.info(
        f'World size: {runner.world_size} (rank {runner.rank}, launcher '
        f'{cfg.launcher}, backend {cfg.env_cfg.dist_cfg.get("backend")})')
    log_lr_scaling(cfg, runner.world_size, runner.logger)
    runner.train()


if __name__ == '__main__':
    main()
