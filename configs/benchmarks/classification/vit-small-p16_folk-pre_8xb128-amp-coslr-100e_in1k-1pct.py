# Few-shot fine-tuning of a FOLK ViT-S/16 on a class-balanced 1 % subset of
# ImageNet-1K labels (README, "What the paper states"): the full fine-tune recipe on
# data/imagenet/meta/train_1pct.txt, made once with a fixed seed by
#   python tools/make_fewshot_split.py data/imagenet/meta/train.txt \
#       data/imagenet/meta/train_1pct.txt --ratio 0.01 --seed 0
# Validation uses the full val set.
#   --cfg-options model.backbone.init_cfg.checkpoint=PATH
#   (and train_dataloader.dataset.ann_file=... for another split file)
_base_ = ['./vit-small-p16_folk-pre_8xb128-amp-coslr-100e_in1k.py']

train_dataloader = dict(
    dataset=dict(ann_file='meta/train_1pct.txt', data_prefix='train'))
