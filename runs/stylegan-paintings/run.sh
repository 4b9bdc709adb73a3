#!/usr/bin/env bash
# The CPU run of the StyleGAN generator to ship (docs/stylegan.md). Run again to resume from train.pth.ckpt.
set -euo pipefail
cd "$(dirname "$0")/../.."
DATA=photo=../shared/datasets/content,monet=../shared/datasets/style/monet,vangogh=../shared/datasets/style/vangogh
DATA=$DATA,ukiyoe=../shared/datasets/style/ukiyoe,cezanne=../shared/datasets/style/cezanne
exec env PLUGIN_HOST_SHARED=../shared .venv/bin/python -m plugin_host train stylegan --data "$DATA" \
  --resolution 128 --mapping-layers 2 --batch-size 10 --iterations 25000 --seed 0 --precision fp32 --threads 2 \
  --checkpoint-every 250 --preview-every 500 --log-every 50 --kid-every 10 --progress json \
  --name stylegan-paintings --out runs/stylegan-paintings/train.pth
