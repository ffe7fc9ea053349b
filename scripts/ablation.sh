#!/usr/bin/env bash
# The ablation study as a queue for scripts/train_queue.sh: RECIPES x SEEDS, each the flagship recipe
# of its day (vgg_slim, the trainer's defaults) with ONE change, EPOCHS long.
#
#   nohup scripts/ablation.sh > runs/ablation.log 2>&1 &
#   EPOCHS=40 SEEDS="0 1" RECIPES="base cutmix mixup" DATA=../shared/data/fer2013.zip scripts/ablation.sh
#
# Each run goes to runs/ablation/RECIPE-eEPOCHS-sSEED, its records to docs/runs/ablation/ (see
# train_queue.sh); summarise with python scripts/run_summary.py --ablation runs/ablation/*
set -euo pipefail
cd "$(dirname "$0")/.."

EPOCHS=${EPOCHS:-40}
SEEDS=${SEEDS:-0 1}
RECIPES=${RECIPES:-base cutmix mixup}
export OUT=${OUT:-runs/ablation} RECORDS_OUT=${RECORDS_OUT:-docs/runs/ablation}

recipe_flags() {
  case "$1" in
    base) echo "" ;;
    cutmix) echo "--mix cutmix" ;;
    mixup) echo "--mix mixup --mix-alpha 0.4" ;;
    jitter) echo "--color-jitter 0.4" ;;  # ColorJitter(brightness=0.4, contrast=0.4), gray
    # Knowledge distillation from fer-v1's ten-crop probabilities (python -m training.distill).
    distill) echo "--distill ${TEACHERS:-docs/runs/teachers/fer-v1-tencrop.npz}" ;;
    *) echo "unknown recipe $1" >&2; return 2 ;;
  esac
}

queue=""  # built whole first, so that an unknown recipe stops the study before anything trains
for seed in $SEEDS; do
  for recipe in $RECIPES; do
    flags=$(recipe_flags "$recipe")
    queue+="$recipe-e$EPOCHS-s$seed --arch vgg_slim --epochs $EPOCHS --seed $seed $flags"$'\n'
  done
done
scripts/train_queue.sh - <<<"$queue"
