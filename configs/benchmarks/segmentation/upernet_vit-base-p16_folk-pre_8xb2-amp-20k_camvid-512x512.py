# CamVid (SegNet's 11 classes, 367 train / 101 val / 233 test, 480x360)
# with a FOLK ViT-B/16 and UperNet: the ADE20K ViT-B protocol (AdamW 1e-4,
# layer decay 0.65, batch 16 = 8 GPUs x 2, slide inference) on images
# upscaled 2x (960x720), random scale 0.5-2.0, 512x512 crops, 20k
# iterations (1,000 warm-up), validation on val every 2k iterations.
# tools/test.py evaluates the 233-image test split (the split published
# CamVid numbers use): images/test, annotations/test, test.txt under
# data_root. The bundled ../shared/data/camvid has train / val only; there,
# evaluate val with
#   --cfg-options test_dataloader.dataset.ann_file=val.txt \
#       test_dataloader.dataset.data_prefix.img_path=images/val \
#       test_dataloader.dataset.data_prefix.seg_map_path=annotations/val
# Data: ../shared/data/camvid (images/{train,val}/*.jpg,
# annotations/{train,val}/*.png with values 0-10, 255 = unlabelled;
# {train,val}.txt list the base names).
# On a GPU machine copy data/packs/camvid240.zip instead and set
# --cfg-options train_dataloader.dataset.data_root=... (see docs).
#   python tools/train.py THIS_CONFIG --cfg-options model.pretrained=PATH
#   python tools/test.py THIS_CONFIG work_dirs/.../iter_20000.pth
_base_ = ['./upernet_vit-base-p16_folk-pre_8xb2-amp-160k_ade20k-512x512.py']

data_root = '../shared/data/camvid'
crop_size = (512, 512)
scale = (960, 720)
num_classes = 11
metainfo = dict(
    classes=('Sky', 'Building', 'Pole', 'Road', 'Pavement', 'Tree',
             'SignSymbol', 'Fence', 'Car', 'Pedestrian', 'Bicyclist'),
    palette=[[128, 128, 128], [128, 0, 0], [192, 192, 128], [128, 64, 128],
             [60, 40, 222], [128, 128, 0], [192, 128, 128], [64, 64, 128],
             [64, 0, 128], [64, 64, 0], [0, 128, 192]])

model = dict(
    decode_head=dict(num_classes=num_classes),
    auxiliary_head=dict(num_classes=num_classes))

train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', reduce_zero_label=False),
    dict(
        type='RandomResize',
        scale=scale,
        ratio_range=(0.5, 2.0),
        keep_ratio=True),
    dict(type='RandomCrop', crop_size=crop_size, cat_max_ratio=0.75),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PhotoMetricDistortion'),
    dict(type='PackSegInputs')
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=scale, keep_ratio=True),
    dict(type='LoadAnnotations', reduce_zero_label=False),
    dict(type='PackSegInputs')
]
dataset = dict(
    type='BaseSegDataset',
    data_root=data_root,
    img_suffix='.jpg',
    seg_map_suffix='.png',
    reduce_zero_label=False,
    ignore_index=255,
    metainfo=metainfo)
train_dataloader = dict(
    batch_size=2,
    num_workers=4,
    dataset=dict(
        _delete_=True,
        data_prefix=dict(
            img_path='images/train', seg_map_path='annotations/train'),
        pipeline=train_pipeline,
        **dataset))
val_dataloader = dict(
    batch_size=1,
    num_workers=4,
    dataset=dict(
        _delete_=True,
        data_prefix=dict(
            img_path='images/val', seg_map_path='annotations/val'),
        pipeline=test_pipeline,
        **dataset))
# tools/test.py: the test split (a base name per line in test.txt).
test_dataloader = dict(
    batch_size=1,
    num_workers=4,
    dataset=dict(
        _delete_=True,
        ann_file='test.txt',
        data_prefix=dict(
            img_path='images/test', seg_map_path='annotations/test'),
        pipeline=test_pipeline,
        **dataset))
val_evaluator = dict(type='IoUMetric', iou_metrics=['mIoU'])
test_evaluator = val_evaluator

param_scheduler = [
    dict(
        type='LinearLR', start_factor=1e-6, by_epoch=False, begin=0, end=1000),
    dict(
        type='PolyLR',
        eta_min=0.0,
        power=1.0,
        begin=1000,
        end=20000,
        by_epoch=False)
]
train_cfg = dict(type='IterBasedTrainLoop', max_iters=20000, val_interval=2000)
default_hooks = dict(
    checkpoint=dict(type='CheckpointHook', by_epoch=False, interval=2000))
