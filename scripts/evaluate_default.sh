#!/usr/bin/env bash
# Evaluate a model (default: the shipped one) the way the product scores: CIFAKE test, and the
# held-out pictures (--group-split 70,15,15: the test part, never trained on or selected with) of
# coco_sd, forrealscan and camera, with robustness rows; reports go to reports/<name>-{cifake,native}/.
# Usage: scripts/evaluate_default.sh [MODEL_DIR] [NAME]      (CIFAKE_LIMIT=N: a stratified sample)
set -euo pipefail
cd "$(dirname "$0")/.."
model=${1:-src/aidetect/shipped_models/default}
name=${2:-default}
data=${AIDETECT_SHARED_DATA:-../shared/data}
.venv/bin/aidetect evaluate --model "$model" --data "cifake=$data/cifake" --split test \
  ${CIFAKE_LIMIT:+--limit $CIFAKE_LIMIT} --out "reports/$name-cifake" --threads "${THREADS:-2}" --quiet \
  ${EXPLAIN:+--explain $EXPLAIN}
.venv/bin/aidetect evaluate --model "$model" --data "coco_sd=$data/coco_sd" --data "forrealscan=$data/forrealscan" \
  --data "camera=$data/camera" --group-split 70,15,15 --split test \
  --out "reports/$name-native" --threads "${THREADS:-2}" --quiet
