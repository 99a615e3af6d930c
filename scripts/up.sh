#!/usr/bin/env bash
# The main job on a fresh machine: install into .venv, then `aidetect up` (watch the inbox,
# embedded broker, shipped default model). Extra arguments go to `aidetect up`.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap.sh
exec .venv/bin/aidetect up "$@"
