#!/usr/bin/env bash
# Fine-tuning of the shipped generator after the machine holding the from-scratch run's checkpoint (230 kimg,
# run.sh) was replaced on 2026-12-07. It started from the 160-kimg generator; that file now holds this run's
# 10-kimg snapshot, so a start without the checkpoint goes on from there. R1 γ 10 and an EMA half-life of 10 kimg,
# the settings run.sh switched to at 210.9 kimg, which brought KID down fastest. D starts afresh and trains alone
# for 5 kimg: without that it stayed at chance while G drifted. At rate 0.002 with the EMA ramped up from 0, G's
# fresh Adam state moved it far in 5 kimg (KID 0.28 -> 0.86 by 10 kimg): so rate 0.0005, and the average starts
# at full half-life. Run again to resume.
set -euo pipefail
cd "$(dirname "$0")/../.."
DATA=photo=../shared/datasets/content,monet=../shared/datasets/style/monet,vangogh=../shared/datasets/style/vangogh
DATA=$DATA,ukiyoe=../shared/datasets/style/ukiyoe,cezanne=../shared/datasets/style/cezanne
exec env PLUGIN_HOST_SHARED=../shared .venv/bin/python -m plugin_host train stylegan --data "$DATA" \
  --init plugins/stylegan/weights/stylegan-paintings.pth --d-warmup 5 --batch-size 10 --iterations 10000 \
  --r1-gamma 10 --ema-kimg 10 --ema-rampup 0 --learning-rate 0.0005 --seed 1 --precision fp32 --threads 2 \
  --checkpoint-every 250 --preview-every 500 --log-every 50 --kid-every 5 --progress json \
  --name stylegan-paintings --out runs/stylegan-paintings/finetune.pth
