# Few-shot (10 % of the labels, class-balanced: 95 images per class) version
# of the Imagenette fine-tuning benchmark. Make the split once:
#   python tools/make_fewshot_split.py ../shared/data/imagenette128/train.txt \
#       data/fewshot/imagenette128_train_10pct.txt --ratio 0.1 --seed 0
# The split lists paths relative to the Imagenette folder, hence
# data_root='' with the folder as data_prefix. Validation: full val set.
#   --cfg-options model.backbone.init_cfg.checkpoint=PATH
#   (and train_dataloader.dataset.ann_file=... for another split file)
_base_ = ['./vit-tiny-p8_folk-pre_1xb32-100i_imagenette128.py']

train_dataloader = dict(
    dataset=dict(
        data_root='',
        ann_file='data/fewshot/imagenette128_train_10pct.txt',
        data_prefix={{_base_.data_root}}))
