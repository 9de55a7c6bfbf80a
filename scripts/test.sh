#!/usr/bin/env bash
# Every test of pfode: the library alone without the command line (no clap), the Rust test
# suite, then the Python package built into a venv and its pytest suite. README.md names
# this script; .ci/run calls it.
#
# PFODE_TORCH=1 also installs torch and diffusers into the venv (several GB, a few minutes)
# and requires the tests against them to run; without it they run only if the venv
# already has both, and say they are skipped otherwise.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo check --lib --no-default-features
# The Slurm job-array test needs a cluster (.ci/run starts one); without one, say it is skipped.
if [ "${PFODE_REQUIRE_SLURM:-}" != 1 ] && ! sinfo -h -o %T 2> /dev/null | grep -qE 'idle|mix|alloc'; then
    echo "note: no Slurm cluster here: tests/slurm.rs is skipped (PFODE_SKIP_SLURM=1); .ci/run starts a local one and runs it"
    export PFODE_SKIP_SLURM=1
fi
cargo test --release

# The Python package, installed the way README.md tells users to, into target/python-venv.
venv=target/python-venv
[ -x "$venv/bin/python" ] || python3 -m venv "$venv"
"$venv/bin/python" -m pip install -q --upgrade pip
"$venv/bin/python" -m pip install -q "./python[test]"
if [ "${PFODE_TORCH:-}" = 1 ]; then
    "$venv/bin/python" -m pip install -q torch diffusers
    export PFODE_REQUIRE_TORCH=1
fi
PFODE_BIN="$PWD/target/release/pfode" "$venv/bin/python" -m pytest -q -rs python/tests
