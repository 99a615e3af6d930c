#!/usr/bin/env bash
# Reproduce the shipped models: the default (Detector v3, `default`), its CNN branch (`v2`, shipped as
# `fast` by scripts/ship_default.py), the small-image model (`cifake`) and the baselines.
# Usage: scripts/train_default.sh [default|cifake|default36|dct|dct24|dct32|v2|npr-native|seed] [OUT]
# The CIFAKE recipes: the parquet set has train/validation/test splits: train on train (40k),
# select the epoch and calibrate on validation (5k), report test (5k) in the card.
#
# Speed (python benchmarks/bench_train.py, docs/detector.md): on 2 cores with AVX512-BF16, bf16
# autocast is 1.3-1.8x the fp32 step and spinning OpenMP threads (ACTIVE) up to 1.3x over the
# sleeping ones `aidetect train` asks for by default (PASSIVE is what keeps a training run usable on
# a shared, loaded machine); torch.compile helped on an AMX machine (1.08x), not under bf16 on the
# AVX512-BF16 EPYC (0.92-0.95x), so it is off unless COMPILE=1. This script assumes the machine is
# yours for the run. SEED=N and THREADS=N override the seed and thread count.
set -euo pipefail
cd "$(dirname "$0")/.."
which=${1:-default}
data=${AIDETECT_SHARED_DATA:-../shared/data}/cifake
export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-ACTIVE}
case "$which" in
  default)
    # The shipped default, Detector v3 (docs/detector-v3.md): the frozen CLIP encoder's centre view at
    # 160 px (VIEW=center for CLIP's own 224 px) and the `fast` CNN's logit per image, cached
    # (resumable; 17 min on 2 cores from an empty cache), then the fusion head fitted with
    # leave-one-source-out calibration and the cascade (5 min); 21.6 min in all, measured on the
    # AVX512-BF16 EPYC (docs/detector-v3.md, "Training time"). Needs the extra data built first
    # (docs/data.md: aidetect data build-extra ... --out $EXTRA); its format-normalised copies (same
    # draws every run, seeded by each file's hash) are made here.
    out=${2:-src/aidetect/shipped_models/default}
    shared=${AIDETECT_SHARED_DATA:-../shared/data}
    extra=${EXTRA:-/work/data/extra}
    cache=${CACHE:-/work/data/features}
    view=${VIEW:-center160}  # the CLIP view the head is fitted on (the card's fusion.clip_size follows it)
    if [ ! -f "$extra/index.csv" ]; then
      echo "error: $extra/index.csv: build the extra data first (aidetect data build-extra, docs/data.md) or set EXTRA" >&2
      exit 2
    fi
    norm="$extra-normalised-crop"
    [ -f "$norm/index.csv" ] || .venv/bin/aidetect data format-baseline "$extra" --normalise-out "$norm" --normalise-mode crop
    .venv/bin/aidetect data features "coco_sd=$shared/coco_sd" "forrealscan=$shared/forrealscan" \
      "camera=$shared/camera" "extra=$extra" "extra_norm_crop=$norm" --cache "$cache" --views "$view" \
      --threads "${THREADS:-2}"
    exec .venv/bin/python scripts/train_v3.py --cache "$cache" --out "$out" --view "$view" ;;
  cifake)
    # The small-image model (images under 224 px): the default network with its first stage at full resolution
    # (strides 1, 2, 2, 2), 30 epochs, bf16 autocast where the CPU has it, eager (torch.compile
    # measured slower than eager under bf16 on the AVX512-BF16 machine). 17 min 31 s there.
    out=${2:-src/aidetect/shipped_models/cifake}
    exec .venv/bin/aidetect train --data "cifake=$data" --out "$out" --arch npr_resnet \
      --arch-kw 'widths=[32,64,128,256]' --arch-kw 'blocks=[1,1,1,1]' --arch-kw 'strides=[1,2,2,2]' \
      --jpeg-p 0.3 --blur-p 0.1 --grayscale-p 0.05 --epochs 30 --batch-size 128 --lr 3e-3 --weight-decay 0.05 \
      --patience 36 --ema 0.999 --seed "${SEED:-0}" --threads "${THREADS:-2}" ${COMPILE:+--compile} ;;
  default36)
    # The previous default (strides 2, 2, 1, 2; 36 epochs; compiled): 15 min 00 s on the AMX machine.
    out=${2:-build/models/default36}
    exec .venv/bin/aidetect train --data "cifake=$data" --out "$out" --arch npr_resnet \
      --arch-kw 'widths=[32,64,128,256]' --arch-kw 'blocks=[1,1,1,1]' --arch-kw 'strides=[2,2,1,2]' \
      --jpeg-p 0.3 --blur-p 0.1 --grayscale-p 0.05 --epochs 36 --batch-size 128 --lr 3e-3 --weight-decay 0.05 \
      --patience 36 --ema 0.999 --compile --seed 0 --threads "${THREADS:-2}" ;;
  dct|dct24)
    # Not shipped (docs/detector.md): the default network plus the block-DCT statistics branch on
    # crops that keep the JPEG grid. dct: 12 epochs on 24 px crops then 6 at 32 px (22 min 24 s of
    # fp32 on 2 AVX2 cores); dct24: all 20 epochs on 24 px crops (19 min 49 s).
    out=${2:-build/models/$which}
    if [ "$which" = dct ]; then schedule=(--small-crop-epochs 12 --epochs 18 --patience 18)
    else schedule=(--small-crop-epochs 20 --epochs 20 --patience 20); fi
    exec .venv/bin/aidetect train --data "cifake=$data" --out "$out" --arch npr_resnet \
      --arch-kw 'widths=[32,64,128,256]' --arch-kw 'blocks=[1,1,1,1]' --arch-kw 'strides=[2,2,1,2]' \
      --arch-kw multiscale=true --arch-kw dct_stats=64 \
      --jpeg-p 0.3 --blur-p 0.1 --grayscale-p 0.05 --crop-grid 8 --small-crop 24 "${schedule[@]}" \
      --batch-size 128 --lr 3e-3 --weight-decay 0.05 --ema 0.999 \
      --seed 0 --threads "${THREADS:-2}" ${COMPILE:+--compile} ;;
  dct32)
    # The DCT branch at the full 32 px for every epoch, crops moving on the JPEG grid over
    # 8 px of mirrored blocks (--grid-pad 8).
    out=${2:-build/models/dct32}
    exec .venv/bin/aidetect train --data "cifake=$data" --out "$out" --arch npr_resnet \
      --arch-kw 'widths=[32,64,128,256]' --arch-kw 'blocks=[1,1,1,1]' --arch-kw 'strides=[2,2,1,2]' \
      --arch-kw multiscale=true --arch-kw dct_stats=64 \
      --jpeg-p 0.3 --blur-p 0.1 --grayscale-p 0.05 --crop-grid 8 --grid-pad 8 \
      --epochs "${EPOCHS:-34}" --patience 99 --batch-size 128 --lr 3e-3 --weight-decay 0.05 --ema 0.999 \
      --seed 0 --threads "${THREADS:-2}" ${COMPILE:+--compile} ;;
  v2|native)
    # Detector v2 (docs/detector.md): ImageNet EfficientNet-Lite0 fine-tuned on native-resolution
    # crops of coco_sd + forrealscan + camera, split by source picture (camera: by camera model),
    # 70/15/15, the test part never used for selection. Both classes re-encoded (JPEG q30-100 at
    # random chroma subsampling, WebP), randomly downscaled, blurred and noised; sources balanced.
    # 18 epochs on 160 px crops, then 6 at 224. Converts the pretrained weights first.
    out=${2:-build/models/v2}
    shared=${AIDETECT_SHARED_DATA:-../shared/data}
    pre=build/pretrained/efficientnet_lite0
    [ -f "$pre/model.safetensors" ] || .venv/bin/python scripts/convert_efficientnet_lite.py --out "$pre"
    exec .venv/bin/aidetect train --data "forrealscan=$shared/forrealscan" --data "camera=$shared/camera" \
      --data "coco_sd=$shared/coco_sd" --group-split 70,15,15 --balance --out "$out" \
      --arch efficientnet_lite --arch-kw 'variant="lite0"' --init "$pre" --input-size 224 \
      --small-crop 160 --small-crop-epochs "${SMALL_EPOCHS:-18}" --epochs "${EPOCHS:-24}" --patience 99 \
      --batch-size 32 --lr "${LR:-5e-4}" --weight-decay 0.05 --ema 0.995 \
      --jpeg-p 0.6 --jpeg-quality 30-100 --jpeg-chroma --webp-p 0.15 --noise-p 0.15 --blur-p 0.1 \
      --downscale-p 0.5 --downscale-min 0.25 --grayscale-p 0.02 \
      --seed "${SEED:-0}" --threads "${THREADS:-2}" ${COMPILE:+--compile} ;;
  npr-native)
    # Not shipped (docs/detector.md): the v2 recipe with the from-scratch NPR network instead of the
    # pretrained backbone (same data, splits, augmentation, epochs and crop sizes; lr 3e-3 from scratch).
    out=${2:-build/models/npr-native}
    shared=${AIDETECT_SHARED_DATA:-../shared/data}
    exec .venv/bin/aidetect train --data "forrealscan=$shared/forrealscan" --data "camera=$shared/camera" \
      --data "coco_sd=$shared/coco_sd" --group-split 70,15,15 --balance --out "$out" \
      --arch npr_resnet --arch-kw 'widths=[32,64,128,256]' --arch-kw 'blocks=[1,1,1,1]' \
      --arch-kw 'strides=[2,2,2,2]' --input-size 224 \
      --small-crop 160 --small-crop-epochs "${SMALL_EPOCHS:-18}" --epochs "${EPOCHS:-24}" --patience 99 \
      --batch-size 32 --lr "${LR:-3e-3}" --weight-decay 0.05 --ema 0.995 \
      --jpeg-p 0.6 --jpeg-quality 30-100 --jpeg-chroma --webp-p 0.15 --noise-p 0.15 --blur-p 0.1 \
      --downscale-p 0.5 --downscale-min 0.25 --grayscale-p 0.02 \
      --seed "${SEED:-0}" --threads "${THREADS:-2}" ${COMPILE:+--compile} ;;
  seed)
    out=${2:-build/models/seed}
    exec .venv/bin/aidetect train --data "cifake=$data" --out "$out" --arch seed \
      --jpeg-p 0.2 --blur-p 0.05 --grayscale-p 0.02 \
      --epochs 14 --batch-size 128 --lr 1e-3 --patience 4 --seed 0 --threads "${THREADS:-2}" ;;
  *) echo "usage: $0 [default|cifake|default36|dct|dct24|dct32|v2|npr-native|seed] [OUT]" >&2; exit 2 ;;
esac
