"""``RecordBatchHook``: writes each training batch's draws to a file.

Imported by the configs of ``test_sigkill_resume.py`` (``custom_imports``,
with this folder on ``PYTHONPATH``): one JSON line per iteration with the
image paths and the crop and frequency-filter draws of every sample.
"""
import json
import os.path as osp

from mmengine.hooks import Hook
from mmpretrain.registry import HOOKS


@HOOKS.register_module()
class RecordBatchHook(Hook):
    """Append ``{iter, img_path, crop_params, freq_param}`` per batch."""

    priority = 'LOWEST'

    def before_train_iter(self, runner, batch_idx, data_batch=None) -> None:
        samples = data_batch['data_samples']
        record = dict(iter=runner.iter + 1)
        for key in ('img_path', 'crop_params', 'freq_kind', 'freq_param'):
            record[key] = [repr(s.metainfo.get(key)) for s in samples]
        with open(osp.join(runner.work_dir, 'batches.jsonl'), 'a') as f:
            f.write(json.dumps(record) + '\n')
