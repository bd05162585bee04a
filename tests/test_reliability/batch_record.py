"""``RecordBatchHook``: writes each training batch's draws to a file.

Imported by the configs of ``test_sigkill_resume.py`` (``custom_imports``,
with this folder on ``PYTHONPATH``): one JSON line per iteration with the
image paths (or, for ``folk_views_collate`` batches, a digest of the
batch's images) and the crop, photometric and frequency-filter draws of
every sample.
"""
import hashlib
import json
import os.path as osp

import numpy as np
from mmengine.hooks import Hook
from mmpretrain.registry import HOOKS


@HOOKS.register_module()
class RecordBatchHook(Hook):
    """Append the draws of each batch: ``{iter, img_path, crop_params,
    freq_kind, freq_param}`` for per-sample data samples, ``{iter, images,
    crop, photometric, freq_kind, freq_param}`` for the arrays of
    ``folk_views_collate``."""

    priority = 'LOWEST'

    def before_train_iter(self, runner, batch_idx, data_batch=None) -> None:
        samples = data_batch['data_samples']
        record = dict(iter=runner.iter + 1)
        if isinstance(samples, dict):  # folk_views_collate
            images = data_batch['inputs'].numpy().tobytes()
            record['images'] = hashlib.sha1(images).hexdigest()
            for key in ('crop', 'photometric', 'freq_kind', 'freq_param'):
                value = samples.get(key)
                record[key] = None if value is None else repr(
                    np.asarray(value).tolist())
        else:
            for key in ('img_path', 'crop_params', 'freq_kind', 'freq_param'):
                record[key] = [repr(s.metainfo.get(key)) for s in samples]
        with open(osp.join(runner.work_dir, 'batches.jsonl'), 'a') as f:
            f.write(json.dumps(record) + '\n')
