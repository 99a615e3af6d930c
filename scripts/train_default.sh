#!/usr/bin/env bash
# Reproduce the shipped default model (and the seed baseline) from ../shared/data/cifake.
# Usage: scripts/train_default.sh [default|seed] [OUT]
# The CIFAKE parquet set has train/validation/test splits: train on train (40k), calibrate
# on validation (5k), report test (5k) in the card.
set -euo pipefail
cd "$(dirname "$0")/.."
which=${1:-default}
data=${AIDETECT_SHARED_DATA:-../shared/data}/cifake
case "$which" in
  default)
    # stage 1: 14 epochs one-cycle (lr 3e-3) with JPEG/blur/grayscale augmentation;
    # stage 2: 5 epochs fine-tuning from stage 1 (lr 1e-3, lighter augmentation).
    out=${2:-src/aidetect/models/default}
    stage1=${STAGE1:-build/models/default-stage1}
    arch=(--arch npr_resnet --arch-kw 'widths=[32,64,128,256]' --arch-kw 'blocks=[1,1,1,1]'
          --arch-kw 'strides=[2,2,1,2]')
    if [ ! -f "$stage1/card.json" ]; then
      .venv/bin/aidetect train --data "cifake=$data" --out "$stage1" "${arch[@]}" \
        --jpeg-p 0.2 --blur-p 0.05 --grayscale-p 0.02 \
        --epochs 14 --batch-size 128 --lr 3e-3 --patience 4 --seed 0 --threads "${THREADS:-2}"
    fi
    exec .venv/bin/aidetect train --data "cifake=$data" --out "$out" "${arch[@]}" --init "$stage1" \
      --jpeg-p 0.1 --blur-p 0.02 --grayscale-p 0.0 \
      --epochs 5 --batch-size 128 --lr 1e-3 --patience 3 --seed 1 --threads "${THREADS:-2}" ;;
  seed)
    out=${2:-build/models/seed}
    exec .venv/bin/aidetect train --data "cifake=$data" --out "$out" --arch seed \
      --jpeg-p 0.2 --blur-p 0.05 --grayscale-p 0.02 \
      --epochs 14 --batch-size 128 --lr 1e-3 --patience 4 --seed 0 --threads ${THREADS:-2} ;;
  *) echo "usage: $0 [default|seed] [OUT]" >&2; exit 2 ;;
esac
