# Headline config: FOLK ViT-B/16 on ImageNet-1K (8 x 128, bf16, 300 epochs).
#   bash tools/dist_train.sh configs/folk_vit-b.py 8
_base_ = ['./folk/folk_vit-base-p16_8xb128-amp-coslr-300e_in1k.py']
