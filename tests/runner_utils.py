"""Run the demo pre-training config in-process with small overrides."""
import contextlib
import functools
import itertools
import os.path as osp

import torch
from mmengine.config import Config
from mmengine.hooks import Hook
from mmengine.runner import Runner

from folk.engine import adapt_cfg_to_device

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
DEMO_CFG = osp.join(REPO, 'configs', 'demo',
                    'folk_vit-tiny-p8_1xb32-200i_imagenette128.py')
_counter = itertools.count()


class LossRecorder(Hook):
    """Keeps the logged losses of every training iteration."""

    def __init__(self, crash_after=None):
        self.losses = {}
        self.crash_after = crash_after

    def after_train_iter(self,
                         runner,
                         batch_idx,
                         data_batch=None,
                         outputs=None):
        self.losses[runner.iter + 1] = {
            k: v.item() if hasattr(v, 'item') else float(v)
            for k, v in outputs.items() if k.startswith('loss')
        }
        if self.crash_after is not None and runner.iter + 1 >= \
                self.crash_after:
            raise KeyboardInterrupt('simulated crash')


def demo_cfg(work_dir,
             data_root,
             max_iters=4,
             batch_size=8,
             ckpt_every=2,
             config=DEMO_CFG,
             **options):
    cfg = Config.fromfile(config)
    cfg.work_dir = str(work_dir)
    cfg.experiment_name = f'test_{next(_counter)}'
    cfg.train_dataloader.batch_size = batch_size
    cfg.train_dataloader.num_workers = 0
    cfg.train_dataloader.persistent_workers = False
    cfg.train_dataloader.dataset.data_root = str(data_root)
    cfg.train_cfg.max_iters = max_iters
    cfg.param_scheduler = [
        dict(
            type='CosineAnnealingLR',
            T_max=max_iters,
            by_epoch=False,
            begin=0,
            end=max_iters)
    ]
    cfg.default_hooks.checkpoint.interval = ckpt_every
    cfg.default_hooks.logger.interval = 1
    # The demo's k-NN monitor (1,000 images) would dominate a 4-iteration
    # test: keep it, on a bank and query set of one image per class.
    for hook in cfg.custom_hooks:
        if hook['type'] == 'KNNMonitorHook':
            hook.update(bank_per_class=1, query_per_class=1, batch_size=10)
            for split in ('bank', 'query'):
                hook[split]['data_root'] = str(data_root)
    cfg.merge_from_dict(options)
    return adapt_cfg_to_device(cfg)


def run(cfg, crash_after=None):
    """Train; return the per-iteration losses (and the runner)."""
    runner = Runner.from_cfg(cfg)
    recorder = LossRecorder(crash_after)
    runner.register_hook(recorder, priority='LOWEST')
    try:
        runner.train()
    except KeyboardInterrupt:
        pass
    return recorder.losses, runner


@contextlib.contextmanager
def cpu_amp():
    """Run MMEngine's ``AmpOptimWrapper`` on a CPU.

    Patches the three GPU-only points of MMEngine 0.10.7, nothing else:
    the device assertion of ``AmpOptimWrapper.__init__``, its scaler class
    (``torch.amp.GradScaler('cpu')``, the CUDA scaler's class and state on
    the CPU) and ``mmengine.runner.amp.autocast`` (also where the k-NN
    monitor imported it), which on a CPU allows only bf16: here
    ``torch.autocast('cpu', dtype)`` with the dtype the GPU would use
    (float16 when the config gives none, as
    ``torch.get_autocast_gpu_dtype()``).
    """
    import mmengine.optim.optimizer.amp_optimizer_wrapper as amp_wrapper
    import mmengine.runner.amp as runner_amp

    @contextlib.contextmanager
    def autocast(device_type=None,
                 dtype=None,
                 enabled=True,
                 cache_enabled=None):
        with torch.autocast(
                'cpu', dtype=dtype or torch.float16, enabled=enabled):
            yield

    import folk.engine.monitor_hooks as monitor_hooks  # imported autocast

    saved = (amp_wrapper.is_cuda_available, amp_wrapper.GradScaler,
             runner_amp.autocast, monitor_hooks.autocast)
    amp_wrapper.is_cuda_available = lambda: True
    amp_wrapper.GradScaler = functools.partial(torch.amp.GradScaler, 'cpu')
    runner_amp.autocast = monitor_hooks.autocast = autocast
    try:
        yield
    finally:
        (amp_wrapper.is_cuda_available, amp_wrapper.GradScaler,
         runner_amp.autocast, monitor_hooks.autocast) = saved
