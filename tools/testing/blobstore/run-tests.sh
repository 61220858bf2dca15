#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-only OR MIT
#
# Everything a test run needs for the blobstore crate (tools/lib/blobstore):
# formatting, clippy with warnings denied, and the unit, behaviour, power-failure and
# property tests. Exits non-zero on the first failure.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../../.." && pwd)"
cd "$root"

export CARGO_BUILD_JOBS="${CARGO_BUILD_JOBS:-1}"

echo "blobstore: cargo fmt --check"
cargo fmt -p blobstore -- --check

echo "blobstore: cargo clippy"
cargo clippy -p blobstore --all-targets --locked -- -D warnings

echo "blobstore: cargo test"
cargo test -p blobstore --release --locked
