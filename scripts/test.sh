#!/usr/bin/env bash
# Every test of pfode: the library alone without the command line (no clap), then the Rust
# test suite. README.md names this script; .ci/run calls it.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo check --lib --no-default-features
cargo test --release
