#!/usr/bin/env bash
# Runs a pfode sweep as a Slurm job array of N shards, then merges them in a dependent job.
#
#   scripts/slurm-sweep.sh SPEC.toml N [OUT] [--wait]
#
# OUT defaults to results/<experiment name>; shard k writes OUT/shard-k. The binary is
# $PFODE, else `pfode` on PATH, else target/release/pfode. With --wait the script returns
# when the merge job has finished (and fails if it did).
set -euo pipefail

spec=${1:?usage: slurm-sweep.sh SPEC N [OUT] [--wait]}
n=${2:?usage: slurm-sweep.sh SPEC N [OUT] [--wait]}
out=${3:-}
wait_flag=""
if [ "${3:-}" = "--wait" ]; then out=""; wait_flag="--wait"; fi
if [ "${4:-}" = "--wait" ]; then wait_flag="--wait"; fi

pfode=${PFODE:-$(command -v pfode || echo target/release/pfode)}
pfode=$(cd "$(dirname "$pfode")" && pwd)/$(basename "$pfode")
spec=$(cd "$(dirname "$spec")" && pwd)/$(basename "$spec")
if [ -z "$out" ]; then
    name=$(sed -n 's/^name *= *"\(.*\)".*/\1/p' "$spec" | head -1)
    out=results/$name
fi
mkdir -p "$out"
out=$(cd "$out" && pwd)

array=$(sbatch --parsable --array=0-$((n - 1)) --job-name=pfode-sweep \
    --output="$out/slurm-%A_%a.log" \
    --wrap="\"$pfode\" sweep \"$spec\" --shard \$SLURM_ARRAY_TASK_ID/$n --out \"$out/shard-\$SLURM_ARRAY_TASK_ID\" --quiet")
shards=$(for ((k = 0; k < n; k++)); do printf '"%s/shard-%d" ' "$out" "$k"; done)
merge=$(sbatch --parsable $wait_flag --dependency=afterok:"$array" --job-name=pfode-merge \
    --output="$out/slurm-merge-%j.log" \
    --wrap="\"$pfode\" merge $shards --out \"$out\"")
echo "submitted array $array ($n shards) and merge $merge; results in $out/results.csv"
