"""CamVid semantic segmentation with a pre-trained backbone (mIoU on val).

MMEngine's Runner trains the shipped tiny CamVid config
(``configs/benchmarks/segmentation/upernet_vit-tiny-p8_folk-pre_1xb4-200i_
camvid-128x128.py``: MMSeg's ``EncoderDecoder`` with its
``VisionTransformer``, ``Feature2Pyramid``, ``UPerHead`` and the auxiliary
FCN head, :class:`folk.downstream.ViTLayerDecayOptimizerConstructor`, the
random resize / crop / flip / photometric pipeline, slide inference and
``IoUMetric``) with the study's overrides: the study's backbone, the
preset's image and crop sizes, iterations, batch, lr and head width, and
CamVid decoded once into memory (:class:`ArraySegDataset`; the pipelines
start after loading). The backbone weights are converted with
:func:`folk.downstream.to_mmseg` and loaded by ``model.pretrained`` under
:class:`folk.downstream.PretrainedKeysCheckHook`, as the config does.

Run alone::

    python benchmarks/study/segment.py --preset smoke \\
        --weights work_dirs/study/folk_smoke/backbones.pth
"""
import os
import os.path as osp
import time
from typing import Dict, List, Optional, Sequence, Tuple

import common
import numpy as np
import torch
from common import log
from mmengine.config import Config
from mmengine.dataset import BaseDataset
from mmseg.registry import DATASETS
from sources import REPO, load_camvid_preset

from folk.downstream import to_mmseg
from folk.engine import adapt_cfg_to_device

CONFIG = osp.join(REPO, 'configs', 'benchmarks', 'segmentation',
                  'upernet_vit-tiny-p8_folk-pre_1xb4-200i_camvid-128x128.py')

_ARRAYS: Dict[str, Tuple[np.ndarray, np.ndarray]] = {}


@DATASETS.register_module(force=True)
class ArraySegDataset(BaseDataset):
    """Decoded images and label maps held in memory, served to MMSeg's
    pipelines as ``LoadImageFromFile`` + ``LoadAnnotations`` leave them
    (``img``: (H, W, 3) uint8 BGR, ``gt_seg_map``: (H, W) uint8, 255 =
    ignored, ``seg_fields``).

    Args:
        key (str): Name given to :func:`register_seg_arrays`.
        pipeline (list): Transforms after loading.
        metainfo (dict, optional): ``classes`` (and ``palette``).
    """

    def __init__(self, key: str, pipeline: Sequence = (), **kwargs) -> None:
        if key not in _ARRAYS:
            raise KeyError(f'ArraySegDataset: no arrays registered as '
                           f'{key!r} (known: {sorted(_ARRAYS)})')
        self.key = key
        kwargs.pop('reduce_zero_label', None)
        kwargs.pop('ignore_index', None)
        super().__init__(
            ann_file='',
            pipeline=list(pipeline),
            serialize_data=False,
            **kwargs)

    def load_data_list(self) -> List[dict]:
        return [dict(idx=i) for i in range(len(_ARRAYS[self.key][0]))]

    def get_data_info(self, idx: int) -> dict:
        info = super().get_data_info(idx)
        images, labels = _ARRAYS[self.key]
        img = images[info['idx']]
        info.update(
            img=img,
            img_shape=img.shape[:2],
            ori_shape=img.shape[:2],
            gt_seg_map=labels[info['idx']],
            seg_fields=['gt_seg_map'],
            reduce_zero_label=False)
        return info


def register_seg_arrays(key: str, images: np.ndarray,
                        labels: np.ndarray) -> str:
    """Make CamVid arrays available to :class:`ArraySegDataset`."""
    if images.shape[:3] != labels.shape or images.dtype != np.uint8:
        raise ValueError(f'register_seg_arrays({key!r}): need (N, H, W, 3) '
                         f'uint8 images and (N, H, W) labels, got '
                         f'{images.shape} {images.dtype} and {labels.shape}')
    _ARRAYS[key] = (images, labels)
    return key


def _out_indices(layers: int) -> Tuple[int, ...]:
    """Four distinct blocks, the last one included (4 -> 0, 1, 2, 3;
    6 -> 1, 2, 3, 5)."""
    step = layers // 4
    return tuple(layers - 1 - k * step for k in (3, 2, 1, 0))


def runner_config(p: dict, pretrained: str, seed: int, work_dir: str,
                  device) -> Config:
    """The shipped tiny CamVid config with the study's overrides."""
    d, n = p['embed'], p['layers']
    if n < 4:
        raise ValueError('the CamVid UperNet needs a ViT with >= 4 layers')
    if p['ffn'] % d:
        raise ValueError('MMSeg ViT: ffn must be a multiple of embed')
    crop = (p['seg_crop'], p['seg_crop'])
    iters = p['seg_iters']
    warmup = max(1, iters // 10)
    cfg = Config.fromfile(CONFIG)
    cfg.merge_from_dict({
        'model.pretrained':
        pretrained,
        'model.data_preprocessor.size':
        crop,
        'model.backbone.img_size': (p['img_size'], ) * 2,
        'model.backbone.patch_size':
        p['patch'],
        'model.backbone.embed_dims':
        d,
        'model.backbone.num_layers':
        n,
        'model.backbone.num_heads':
        p['heads'],
        'model.backbone.mlp_ratio':
        p['ffn'] // d,
        'model.backbone.out_indices':
        _out_indices(n),
        'model.neck.embed_dim':
        d,
        'model.decode_head.in_channels': [d] * 4,
        'model.decode_head.channels':
        p['seg_channels'],
        'model.auxiliary_head.in_channels':
        d,
        'model.auxiliary_head.channels':
        max(1, p['seg_channels'] // 2),
        'model.test_cfg.crop_size':
        crop,
        'model.test_cfg.stride':
        tuple(round(c * 2 / 3) for c in crop),
        'optim_wrapper.optimizer.lr':
        p['seg_lr'],
        'optim_wrapper.paramwise_cfg.num_layers':
        n,
        'optim_wrapper.paramwise_cfg.layer_decay_rate':
        p['seg_layer_decay'],
        'train_cfg.max_iters':
        iters,
        'train_cfg.val_interval':
        iters + 1,  # validated once, after
    })
    warm, poly = cfg.param_scheduler
    warm.end = poly.begin = min(warmup, iters)
    poly.end = iters
    if iters <= warmup:  # too short for the polynomial decay
        cfg.param_scheduler = [warm]
    for split, key in (('train', 'seg_train'), ('val', 'seg_val')):
        loader = cfg[f'{split}_dataloader']
        pipeline = [
            t for t in loader.dataset.pipeline
            if t['type'] not in ('LoadImageFromFile', 'LoadAnnotations')
        ]
        for t in pipeline:
            if t['type'] in ('RandomResize', 'Resize'):
                t['scale'] = tuple(p['seg_size'])
            if t['type'] == 'RandomCrop':
                t['crop_size'] = crop
        loader.dataset = dict(
            type='ArraySegDataset',
            key=key,
            pipeline=pipeline,
            metainfo=loader.dataset.metainfo)
        loader.num_workers = 0
        loader.persistent_workers = False
    cfg.train_dataloader.batch_size = p['seg_batch']
    cfg.train_dataloader.sampler = dict(
        type='InfiniteSampler', shuffle=True, seed=seed)
    cfg.default_hooks.checkpoint = None
    cfg.default_hooks.logger = dict(
        type='LoggerHook', interval=max(1, iters // 4))
    cfg.work_dir = work_dir
    cfg.experiment_name = f'camvid_{time.time_ns()}'
    cfg.randomness = dict(seed=seed)
    cfg.log_level = 'WARNING'
    cfg.visualizer = dict(type='SegLocalVisualizer', vis_backends=[])
    return adapt_cfg_to_device(cfg)


def segmentation(weights: Dict[str, torch.Tensor],
                 p: dict,
                 cam: dict,
                 seed: int,
                 device,
                 tag: str = '',
                 work_dir: Optional[str] = None) -> float:
    """mIoU (fraction) on CamVid val after training the UperNet."""
    from mmengine.registry import DefaultScope
    from mmengine.runner import Runner
    work_dir = work_dir or osp.join(REPO, 'work_dirs', 'study', 'camvid')
    os.makedirs(work_dir, exist_ok=True)
    pretrained = osp.join(work_dir, 'backbone_mmseg.pth')
    torch.save(dict(state_dict=to_mmseg(weights)), pretrained)
    register_seg_arrays('seg_train', cam['train']['images'],
                        cam['train']['labels'])
    register_seg_arrays('seg_val', cam['val']['images'], cam['val']['labels'])
    cfg = runner_config(p, pretrained, seed, work_dir, device)
    # the Runner makes its scope (mmseg) the current one: restore the
    # caller's afterwards
    with DefaultScope.overwrite_default_scope('mmseg'):
        runner = Runner.from_cfg(cfg)
        runner.train()
        metrics = runner.val()
    log(f'{tag} camvid {p["seg_iters"]} it, mIoU {metrics["mIoU"]:.2f}')
    return float(metrics['mIoU']) / 100.


def main(argv: Optional[List[str]] = None) -> Dict[str, float]:
    parser = common.script_parser(__doc__, weights=True, data=False)
    parser.add_argument(
        '--camvid', default='auto', help='camvid240.zip or a camvid folder')
    parser.add_argument('--work-dir', default='work_dirs/study/camvid')
    args = parser.parse_args(argv)
    p, device = common.setup(parser, args)
    cam = load_camvid_preset(p, args.camvid)
    out = {}
    for name, weights in common.load_weights(args.weights).items():
        out[name] = segmentation(weights, p, cam, args.seed, device, name,
                                 osp.join(args.work_dir, name))
        log(f'CamVid mIoU of {name}: {out[name]:.4f}')
    return out


if __name__ == '__main__':
    main()
