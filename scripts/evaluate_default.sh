#!/usr/bin/env bash
# Evaluate a model (default: the shipped one) on the CIFAKE test split and on coco_sd, with
# robustness rows; reports go to reports/<name>-{cifake,coco_sd}/.
# Usage: scripts/evaluate_default.sh [MODEL_DIR] [NAME]
set -euo pipefail
cd "$(dirname "$0")/.."
model=${1:-src/aidetect/models/default}
name=${2:-default}
data=${AIDETECT_SHARED_DATA:-../shared/data}
.venv/bin/aidetect evaluate --model "$model" --data "cifake=$data/cifake" --split test \
  --out "reports/$name-cifake" --threads "${THREADS:-2}" --quiet ${EXPLAIN:+--explain $EXPLAIN}
.venv/bin/aidetect evaluate --model "$model" --data "coco_sd=$data/coco_sd" \
  --out "reports/$name-coco_sd" --threads "${THREADS:-2}" --quiet
