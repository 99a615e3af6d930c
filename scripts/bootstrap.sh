#!/usr/bin/env bash
# Create .venv (if needed) and install aidetect with the pinned torch pair.
# Usage: scripts/bootstrap.sh [extra]   (extra: "test" installs the test tools too)
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
extra=${1:-}
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
stamp=".venv/.installed${extra:+-$extra}"
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ] || [ constraints.txt -nt "$stamp" ]; then
  .venv/bin/python -m pip install -q --upgrade pip
  .venv/bin/python -m pip install -q -c constraints.txt -e ".${extra:+[$extra]}"
  if [ "$extra" = test ]; then
    # the tests' watermark encoder (aidetect decodes SD watermarks itself, provenance/watermark.py).
    # invisible-watermark pins opencv-python, the GUI build that would overwrite our
    # opencv-python-headless's cv2 (and need libGL): installed without its dependencies.
    .venv/bin/python -m pip install -q --no-deps "invisible-watermark==0.2.0"
  fi
  touch "$stamp"
fi
