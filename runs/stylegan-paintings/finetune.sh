#!/usr/bin/env bash
# Fine-tuning of the shipped generator (160 kimg), after the machine holding the from-scratch run's checkpoint
# (230 kimg, run.sh) was replaced on 2026-12-07. The settings run.sh switched to at 210.9 kimg, which had brought
# KID down fastest: R1 γ 10, EMA half-life 10 kimg, rate 0.002. D starts afresh and trains alone for the first
# 10 kimg: without that it stayed at chance for 7 kimg while G drifted (KID 0.28 → 0.52). Run again to resume.
set -euo pipefail
cd "$(dirname "$0")/../.."
DATA=photo=../shared/datasets/content,monet=../shared/datasets/style/monet,vangogh=../shared/datasets/style/vangogh
DATA=$DATA,ukiyoe=../shared/datasets/style/ukiyoe,cezanne=../shared/datasets/style/cezanne
exec env PLUGIN_HOST_SHARED=../shared .venv/bin/python -m plugin_host train stylegan --data "$DATA" \
  --init plugins/stylegan/weights/stylegan-paintings.pth --d-warmup 10 --batch-size 10 --iterations 10000 \
  --r1-gamma 10 --ema-kimg 10 --learning-rate 0.002 --seed 1 --precision fp32 --threads 2 \
  --checkpoint-every 250 --preview-every 500 --log-every 50 --kid-every 5 --progress json \
  --name stylegan-paintings --out runs/stylegan-paintings/finetune.pth
