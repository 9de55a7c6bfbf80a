#!/usr/bin/env bash
# Sample grids of the committed digits model: real images, then DDIM and DPM-Solver++(2M)
# at 10, 20, 50, 100 and 1000 NFE from the same x_T (seed 0), 100 images each, into
# results/learned_digits/grids/. Usage: scripts/digits_grids.sh [PFODE_BINARY]
set -euo pipefail
cd "$(dirname "$0")/.."
pfode=${1:-target/release/pfode}
out=results/learned_digits/grids
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$out"
"$pfode" digits grid train --out "$out/real_train.png"
"$pfode" digits grid held-out --out "$out/real_held_out.png"
for solver in ddim dpm-solver++2m; do
  for nfe in 10 20 50 100 1000; do
    "$pfode" sample --model models/digits.safetensors --solver "$solver" --nfe "$nfe" \
      --spacing trailing --n 100 --seed 0 --out "$tmp/x.npy" > /dev/null
    "$pfode" digits grid "$tmp/x.npy" --out "$out/${solver}_nfe${nfe}.png"
  done
done
