#!/usr/bin/env bash
# Train a queue of ablation runs one after another, each resumable, so that a long study can be
# trained in legs on a small machine: run it again (after a kill, a reboot, a new session) and it
# skips finished runs and resumes the unfinished one from its last.pt.
#
#   nohup scripts/ablation.sh > runs/ablation.log 2>&1 &
#   EPOCHS=40 SEEDS="0 1" RECIPES="base cutmix mixup" DATA=../shared/data/fer2013.zip scripts/ablation.sh
#
# Each run goes to runs/ablation/RECIPE-eEPOCHS-sSEED; summarise with
#   python scripts/run_summary.py runs/ablation/*
# Run folders do not outlive the machine, so what lasts of a finished run is copied into the work tree
# to be committed: its config.json and metrics.jsonl into RECORDS_OUT/RUN/ (a few KB), and the ten-crop
# soft targets of its best checkpoint (about 4 minutes to write) as TEACHERS_OUT/RUN.npz (0.4 MB), from
# which an ensemble teacher is later built (python -m training.distill --teacher FILE.npz ...).
# A recipe is the current flagship recipe (vgg_slim, the trainer's defaults) with ONE change.
set -euo pipefail
cd "$(dirname "$0")/.."

DATA=${DATA:-../shared/data/fer2013.zip}
EPOCHS=${EPOCHS:-40}
SEEDS=${SEEDS:-0 1}
RECIPES=${RECIPES:-base cutmix mixup}
OUT=${OUT:-runs/ablation}
PY=${PY:-.venv/bin/python}
TEACHERS_OUT=${TEACHERS_OUT:-docs/runs/teachers}
RECORDS_OUT=${RECORDS_OUT:-docs/runs/ablation}

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

finished() {  # the run's metrics.jsonl already holds its last epoch
  [[ -f "$1/metrics.jsonl" ]] && "$PY" - "$1/metrics.jsonl" "$EPOCHS" <<'PY'
import json, sys
rows = [json.loads(line) for line in open(sys.argv[1]) if line.strip()]
sys.exit(0 if rows and rows[-1]["epoch"] >= int(sys.argv[2]) else 1)
PY
}

keep_finished_run() {  # once per finished run, while its folder is still there
  local name targets
  name=$(basename "$1")
  mkdir -p "$RECORDS_OUT/$name"
  cp "$1/config.json" "$1/metrics.jsonl" "$RECORDS_OUT/$name/"
  targets="$TEACHERS_OUT/$name.npz"
  [[ -f "$targets" || ! -f "$1/best.pt" ]] && return 0
  echo "== $(date -u +%FT%TZ) $1: ten-crop soft targets -> $targets"
  "$PY" -m training.distill --data "$DATA" --tta tencrop --teacher "$1/best.pt" --out "$targets"
}

for seed in $SEEDS; do
  for recipe in $RECIPES; do
    run="$OUT/$recipe-e$EPOCHS-s$seed"
    flags=$(recipe_flags "$recipe")
    if finished "$run"; then
      echo "== $run finished; skipping"
    else
      echo "== $(date -u +%FT%TZ) $run: --arch vgg_slim --epochs $EPOCHS --seed $seed $flags"
      # shellcheck disable=SC2086  # flags are words on purpose
      "$PY" -m training.train --data "$DATA" --arch vgg_slim --epochs "$EPOCHS" --seed "$seed" \
        --device cpu --out "$run" --resume $flags
    fi
    keep_finished_run "$run"
  done
done
echo "== $(date -u +%FT%TZ) all runs finished"
