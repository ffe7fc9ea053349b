#!/usr/bin/env bash
# Train a queue of runs one after another, each resumable, so that a long plan trains in legs on a
# small machine: start it again (after a kill, a reboot, a new session) and it skips finished runs and
# resumes the unfinished one from its last.pt.
#
#   nohup scripts/train_queue.sh scripts/queues/flagship.txt > runs/flagship.log 2>&1 &
#
# A queue file holds one run a line, `NAME FLAGS...` (flags of python -m training.train; # starts a
# comment). Each run goes to OUT/NAME (OUT: runs/QUEUE, QUEUE being the file's name without .txt).
# Run folders do not outlive the machine, so what lasts of a finished run is copied into the work tree
# to be committed: its config.json and metrics.jsonl into RECORDS_OUT/NAME/ (a few KB), and the
# ten-crop soft targets of its best checkpoint (minutes to write) as TEACHERS_OUT/NAME.npz (0.4 MB),
# from which an ensemble teacher is built (python -m training.distill --teacher A.npz --teacher B.npz ...),
# and its best checkpoint's figures on the capture proxy (bench/capture.py) as CAPTURE_OUT/NAME.json.
# A run whose folder is gone but whose records and soft targets were kept (a new checkout of a later
# leg) counts as finished too, so the queue goes on to the next run instead of training it again.
# A queue file named "-" is read from standard input (scripts/ablation.sh builds its queue so).
# DEVICE (default cpu) is the trainer's --device: DEVICE=cuda trains the queue on a lent GPU.
set -euo pipefail
QUEUE=${1:?usage: scripts/train_queue.sh QUEUE_FILE}
cd "$(dirname "$0")/.."
[[ "$QUEUE" == - ]] && QUEUE_TEXT=$(cat) || QUEUE_TEXT=$(<"$QUEUE")
NAME=$(basename "$QUEUE" .txt)

DATA=${DATA:-../shared/data/fer2013.zip}
OUT=${OUT:-runs/$NAME}
PY=${PY:-.venv/bin/python}
DEVICE=${DEVICE:-cpu}
TEACHERS_OUT=${TEACHERS_OUT:-docs/runs/teachers}
RECORDS_OUT=${RECORDS_OUT:-docs/runs/$NAME}
CAPTURE_OUT=${CAPTURE_OUT:-docs/runs/capture}

finished() {  # the run's metrics.jsonl holds the last epoch its config.json asks for
  [[ -f "$1/metrics.jsonl" && -f "$1/config.json" ]] && "$PY" - "$1" <<'PY'
import json, sys
from pathlib import Path
run = Path(sys.argv[1])
rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines() if line.strip()]
epochs = json.loads((run / "config.json").read_text())["epochs"]
sys.exit(0 if rows and rows[-1]["epoch"] >= epochs else 1)
PY
}

keep_finished_run() {  # once per finished run, while its folder is still there
  local name targets
  name=$(basename "$1")
  mkdir -p "$RECORDS_OUT/$name"
  cp "$1/config.json" "$1/metrics.jsonl" "$RECORDS_OUT/$name/"
  [[ -f "$1/best.pt" ]] || return 0
  targets="$TEACHERS_OUT/$name.npz"
  if [[ ! -f "$targets" ]]; then
    echo "== $(date -u +%FT%TZ) $1: ten-crop soft targets -> $targets"
    "$PY" -m training.distill --data "$DATA" --tta tencrop --teacher "$1/best.pt" --out "$targets"
  fi
  proxy="$CAPTURE_OUT/$name.json"
  if [[ ! -f "$proxy" ]]; then
    echo "== $(date -u +%FT%TZ) $1: clean and capture proxy accuracy -> $proxy"
    mkdir -p "$CAPTURE_OUT"
    # A measurement, not training: should it fail, the queue trains on and says so.
    "$PY" bench/capture.py --data "$DATA" --weights "$1/best.pt" --json "$proxy" ||
      echo "== $(date -u +%FT%TZ) $1: the capture proxy failed; measure it by hand (docs/training.md)"
  fi
}

while read -r run_name flags; do
  [[ -z "$run_name" || "$run_name" == \#* ]] && continue
  run="$OUT/$run_name"
  if finished "$run"; then
    echo "== $run finished; skipping"
  elif finished "$RECORDS_OUT/$run_name" && [[ -f "$TEACHERS_OUT/$run_name.npz" ]]; then
    echo "== $run finished in an earlier leg (records in $RECORDS_OUT/$run_name); skipping"
    continue
  else
    echo "== $(date -u +%FT%TZ) $run: $flags"
    # shellcheck disable=SC2086  # flags are words on purpose
    "$PY" -m training.train --data "$DATA" --device "$DEVICE" --out "$run" --resume $flags
  fi
  keep_finished_run "$run"
done < <(sed 's/#.*//' <<<"$QUEUE_TEXT")
echo "== $(date -u +%FT%TZ) all runs of $NAME finished"
