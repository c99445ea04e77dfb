#!/usr/bin/env bash
# make demo: validate every example, then run one example per engine on this machine, each with
# its live progress and its report (JSON + PNG) under reports/.
set -euo pipefail
cd "$(dirname "$0")/.."

MLSCALE=${MLSCALE:-.venv/bin/mlscale}
DEMOS=(
  examples/deadlinejob-pagerank.yaml
  examples/federatedtraining-digits-iid.yaml
  examples/inferenceservice-small-cnn.yaml
)

echo "== validating every example (the same check the operator makes on admission)"
"$MLSCALE" validate examples/*.yaml

status=0
for example in "${DEMOS[@]}"; do
  name=$(basename "$example" .yaml)
  echo
  echo "== $example: what it asks for"
  "$MLSCALE" explain "$example"
  echo "== mlscale run $example --report reports/$name"
  if "$MLSCALE" run "$example" --report "reports/$name"; then
    echo "== $name: promise kept; report in reports/$name/report.json and report.png"
  else
    echo "== $name: promise NOT kept (see reports/$name/report.json)"
    status=1
  fi
done
exit $status
