"""The study's pre-training configs (``configs/study``) at a preset's scale.

Every variant is a config file under ``configs/study/``; this module loads
one, resizes it for the ``gpu`` / ``smoke`` presets (:func:`apply_scale`)
and reads back the scale the evaluation protocols use (:func:`scale_of`).
"""
import os.path as osp
from typing import List, Optional

import arrays
from mmengine.config import Config
from presets import make_preset
from sources import REPO

from folk.datasets.transforms import BLUR_SIGMA_RANGE
from folk.frequency import mfm_radius

CONFIGS = osp.join(REPO, 'configs', 'study')


def variant_config_path(variant: str) -> str:
    """``configs/study/<variant>.py``."""
    return osp.join(CONFIGS, f'{variant}.py')


def variant_config(variant: str,
                   scale: Optional[dict] = None,
                   cfg_options: Optional[dict] = None) -> Config:
    """``configs/study/<variant>.py`` at the preset's ``scale``
    (:func:`apply_scale`; None: as written) with ``cfg_options``."""
    path = variant_config_path(variant)
    if not osp.isfile(path):
        raise FileNotFoundError(f'no study config for variant {variant!r}: '
                                f'{osp.relpath(path, REPO)}')
    cfg = Config.fromfile(path)
    if scale:
        apply_scale(cfg, scale)
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    return cfg


def apply_scale(cfg: Config, scale: dict) -> Config:
    """Resize a study config in place (the ``gpu`` / ``smoke`` presets).

    ``scale`` keys (each optional): ``img_size``, ``embed``, ``layers``,
    ``heads``, ``ffn`` (the ViT); ``epochs``, ``batch``, ``lr``,
    ``num_workers``, ``log_every``; FOLK's ``proj_hidden``,
    ``proj_bottleneck``, ``out_dim``, ``teacher_temp`` (constant),
    ``teacher_momentum``; ``monitor_bank_per_class``. The sizes that follow
    the crop (blur radius, MFM radius, evaluation resize) follow it.
    """
    model, loader = cfg.model, cfg.train_dataloader
    vit = model.backbone
    if 'img_size' in scale:
        old, size = vit.img_size, scale['img_size']
        vit.img_size = size
        views = loader.dataset.pipeline[0]
        views.crop_size = size
        if 'blur_sigma' in views:
            views.blur_sigma = tuple(s * size / 224 for s in BLUR_SIGMA_RANGE)
        for flt in loader.dataset.pipeline[1].filters:
            if 'radius' in flt:
                flt['radius'] = mfm_radius(size, flt['radius'] * 224 / old)
        for hook in cfg.custom_hooks:
            if hook['type'] == 'KNNMonitorHook':
                hook['pipeline'] = arrays.eval_pipeline(size)
    for key, arch_key in (('embed', 'embed_dims'), ('layers', 'num_layers'),
                          ('heads', 'num_heads'), ('ffn',
                                                   'feedforward_channels')):
        if key in scale:
            vit.arch[arch_key] = scale[key]
    if 'embed' in scale:
        model.neck.in_channels = scale['embed']
        if model.type == 'FOLK':
            model.projector.in_channels = scale['embed']
    if model.type == 'FOLK':
        for key, target, name in (('proj_hidden', model.projector,
                                   'hidden_channels'), ('proj_bottleneck',
                                                        model.projector,
                                                        'bottleneck_channels'),
                                  ('out_dim', model.projector, 'out_channels'),
                                  ('out_dim', model.distill_head.loss,
                                   'out_dim'),
                                  ('teacher_temp', model.distill_head.loss,
                                   'teacher_temp'), ('teacher_temp',
                                                     model.distill_head.loss,
                                                     'warmup_teacher_temp'),
                                  ('teacher_momentum', model,
                                   'teacher_momentum')):
            if key in scale:
                target[name] = scale[key]
    if 'epochs' in scale:
        epochs = scale['epochs']
        warmup = max(1, round(epochs / 10))
        cfg.train_cfg.max_epochs = epochs
        warm, cosine = cfg.param_scheduler
        warm.end = cosine.begin = min(warmup, epochs)
        cosine.end = epochs
        cosine.T_max = max(1, epochs - warmup)
        if epochs <= warmup:  # too short for the cosine part
            cfg.param_scheduler = [warm]
        if model.type == 'FOLK':
            model.distill_head.loss.warmup_epochs = warmup
    if 'batch' in scale:
        loader.batch_size = scale['batch']
    if 'lr' in scale:
        cfg.optim_wrapper.optimizer.lr = scale['lr']
    if 'num_workers' in scale:
        loader.num_workers = scale['num_workers']
        loader.persistent_workers = scale['num_workers'] > 0
    for hook in cfg.custom_hooks:
        if hook['type'] == 'CollapseMonitorHook' and 'log_every' in scale:
            hook['interval'] = scale['log_every']
        if hook['type'] == 'KNNMonitorHook' and \
                'monitor_bank_per_class' in scale:
            hook['bank_per_class'] = scale['monitor_bank_per_class']
    if 'log_every' in scale:
        cfg.default_hooks.logger.interval = scale['log_every']
        cfg.log_processor.window_size = scale['log_every']
    return cfg


def scale_of(cfg: Config) -> dict:
    """The backbone and schedule of a study config, as the preset keys the
    protocols and the report read (``img_size``, ``patch``, ``embed``,
    ``layers``, ``heads``, ``ffn``, ``epochs``, ``batch``, ``lr`` and, for
    FOLK, the teacher's momentum and temperature and the prototypes)."""
    vit = cfg.model.backbone
    return dict(
        img_size=vit.img_size,
        patch=vit.patch_size,
        embed=vit.arch.embed_dims,
        layers=vit.arch.num_layers,
        heads=vit.arch.num_heads,
        ffn=vit.arch.feedforward_channels,
        epochs=cfg.train_cfg.max_epochs,
        batch=cfg.train_dataloader.batch_size,
        lr=cfg.optim_wrapper.optimizer.lr,
        **(dict(
            teacher_momentum=cfg.model.teacher_momentum,
            teacher_momentum_end=cfg.model.teacher_momentum_end,
            out_dim=cfg.model.distill_head.loss.out_dim,
            teacher_temp=cfg.model.distill_head.loss.teacher_temp)
           if cfg.model.type == 'FOLK' else {}))


def variant_filters(cfg: Config) -> List[dict]:
    """The filter list of the config's ``RandomFrequencyFilter``."""
    for t in cfg.train_dataloader.dataset.pipeline:
        if t['type'] == 'RandomFrequencyFilter':
            return [dict(f) for f in t['filters']]
    raise ValueError('the study config has no RandomFrequencyFilter')


def study_preset(name: str,
                 overrides: Optional[dict] = None,
                 cfg_options: Optional[dict] = None) -> dict:
    """Preset ``name`` with ``overrides`` and the scale of its configs
    (:func:`scale_of` of ``folk``)."""
    p = make_preset(name, overrides)
    p.update(scale_of(variant_config('folk', p['scale'], cfg_options)))
    return p
