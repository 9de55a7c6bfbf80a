#!/usr/bin/env bash
# Every test of pfode: the library alone without the command line (no clap), then the Rust
# test suite. README.md names this script; .ci/run calls it.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo check --lib --no-default-features
# The Slurm job-array test needs a cluster (.ci/run starts one); without one, say it is skipped.
if [ "${PFODE_REQUIRE_SLURM:-}" != 1 ] && ! sinfo -h -o %T 2> /dev/null | grep -qE 'idle|mix|alloc'; then
    echo "note: no Slurm cluster here: tests/slurm.rs is skipped (PFODE_SKIP_SLURM=1); .ci/run starts a local one and runs it"
    export PFODE_SKIP_SLURM=1
fi
cargo test --release
