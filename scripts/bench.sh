#!/usr/bin/env bash
# make bench: every benchmark under bench/, each writing JSON + PNG under bench/results/.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
for script in bench/deadlinejob.py bench/inferenceservice.py bench/federatedtraining.py; do
  echo "== $PY $script"
  "$PY" "$script"
done
