#!/usr/bin/env bash
# make bench: every benchmark under bench/, each writing JSON + PNG under bench/results/.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
# Each with the arguments the README's tables were made with.
for run in "bench/deadlinejob.py --repeats 3" "bench/allocation.py" "bench/jit.py" "bench/jit.py --jvm driver --repeats 2" "bench/rest_polling.py" "bench/inferenceservice.py --duration 45" "bench/federatedtraining.py --seeds 0 1"; do
  echo "== $PY $run"
  # shellcheck disable=SC2086  # the arguments are split on purpose
  "$PY" $run
done
