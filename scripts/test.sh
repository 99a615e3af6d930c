#!/usr/bin/env bash
# The test command: installs what the suite needs (Debian: xvfb, imagemagick, xdotool,
# redis-server; Python: .venv with the pinned torch pair) and runs ruff + pytest.
# Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
need=()
command -v Xvfb >/dev/null || need+=(xvfb)
command -v import >/dev/null || need+=(imagemagick)
command -v xdotool >/dev/null || need+=(xdotool)
command -v redis-server >/dev/null || need+=(redis-server)
python3 -c "import tkinter" 2>/dev/null || need+=(python3-tk)
if [ ${#need[@]} -gt 0 ]; then
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need[@]}" >/dev/null
fi
scripts/bootstrap.sh test
.venv/bin/ruff check src tests benchmarks
exec .venv/bin/python -m pytest -q "$@"
