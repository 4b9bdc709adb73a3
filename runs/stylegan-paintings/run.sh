#!/usr/bin/env bash
# The CPU run of the StyleGAN generator to ship (docs/stylegan.md). Run again to resume from train.pth.ckpt.
# From step 21 088 (210.9 kimg) on, the DiffAugment low-shot settings: R1 γ 10, EMA half-life 10 kimg, rate 0.002
# (before: 1, 2.5, 0.0025), because D's real-fake logit gap and R1 gradients kept growing while KID got worse.
set -euo pipefail
cd "$(dirname "$0")/../.."
DATA=photo=../shared/datasets/content,monet=../shared/datasets/style/monet,vangogh=../shared/datasets/style/vangogh
DATA=$DATA,ukiyoe=../shared/datasets/style/ukiyoe,cezanne=../shared/datasets/style/cezanne
exec env PLUGIN_HOST_SHARED=../shared .venv/bin/python -m plugin_host train stylegan --data "$DATA" \
  --resolution 128 --mapping-layers 2 --batch-size 10 --iterations 30000 --r1-gamma 10 --ema-kimg 10 \
  --learning-rate 0.002 --seed 0 --precision fp32 --threads 2 \
  --checkpoint-every 250 --preview-every 500 --log-every 50 --kid-every 10 --progress json \
  --name stylegan-paintings --out runs/stylegan-paintings/train.pth
