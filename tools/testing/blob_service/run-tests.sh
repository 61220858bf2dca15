#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-only OR MIT
#
# Test entry point of the blob service (tools/lib/blob_service):
#   formatting, clippy, unit and door tests, the differential suite against
#   Azurite, and a Python azure-storage-blob SDK session against our HTTP door.
#
# Installs what it needs (Azurite from npm, the SDK from PyPI into a venv)
# idempotently under ${HVAB_CACHE:-$HOME/.cache/hv_azure_blob}, outside the
# repository. Exits non-zero on any failure.
set -euo pipefail

# shellcheck source=tools/testing/blob_service/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

setup_work blob-service-tests

install_azurite
install_sdk

cd "$ROOT"
say "cargo fmt --check"
cargo fmt -p "$PKG" -- --check
say "cargo clippy"
cargo clippy -p "$PKG" --all-targets --quiet -- -D warnings
say "cargo test"
cargo test -p "$PKG"

say "starting Azurite $AZURITE_VERSION"
start_azurite
say "Azurite on 127.0.0.1:$AZURITE_PORT"
say "differential suite: request script against Azurite and our HTTP door"
HVAB_AZURITE_ADDR=127.0.0.1:$AZURITE_PORT \
	cargo test -p "$PKG" --test differential -- --ignored --nocapture 2>&1 \
	| tee "$WORK/differential.log" | grep -E '^(differential:|  (DIFF|OURS|DOCUMENTED))|test result' >&2
grep -q '^test result: ok. 1 passed' "$WORK/differential.log" || die "differential suite failed"

say "Python SDK session against Azurite (checks the session itself)"
"$PY" "$HERE/sdk_session.py" "http://127.0.0.1:$AZURITE_PORT" >"$WORK/sdk-azurite.log" 2>&1 \
	|| { cat "$WORK/sdk-azurite.log" >&2; die "SDK session failed against Azurite"; }
tail -n 1 "$WORK/sdk-azurite.log" >&2

say "Python SDK session against our HTTP door"
cargo build -p "$PKG" --bin azure-blob-httpd --quiet
"$ROOT/target/debug/azure-blob-httpd" --listen 127.0.0.1:0 --port-file "$WORK/httpd.port" \
	2>"$WORK/httpd.log" &
HTTPD_PID=$!
HTTPD_PORT=$(wait_port_file "$WORK/httpd.port" "$HTTPD_PID") || die "azure-blob-httpd did not start"
"$PY" "$HERE/sdk_session.py" "http://127.0.0.1:$HTTPD_PORT" | tee "$WORK/sdk-ours.log" | tail -n 1
grep -q ' passed, 0 failed$' "$WORK/sdk-ours.log" || die "SDK session failed against our HTTP door"

say "all blob service tests passed"
