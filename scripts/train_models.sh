#!/usr/bin/env bash
# Retrains the committed learned models and the digits classifier with the settings they
# were made with (same seed ⇒ the same weights on the same kind of machine), then the
# learned sweeps, their plots and the digits sample grids.
# Usage: scripts/train_models.sh [PFODE_BINARY]   (about 15 minutes on 2 cores)
set -euo pipefail
cd "$(dirname "$0")/.."
pfode=${1:-target/release/pfode}
"$pfode" train --data ring2d --out models/ring2d.safetensors --quiet
"$pfode" train --data swissroll --out models/swissroll.safetensors --quiet
"$pfode" train --data digits --out models/digits.safetensors --steps 20000 --batch 256 \
  --width 512 --depth 3 --lr 1e-3 --warmup 500 --quiet
"$pfode" digits classifier --out models/digits_classifier.safetensors
for name in learned_ring2d learned_digits; do
  rm -rf "results/$name"
  "$pfode" sweep "experiments/$name.toml" --quiet
  "$pfode" orders "results/$name" > /dev/null
  "$pfode" plot "results/$name"
done
scripts/digits_grids.sh "$pfode"
