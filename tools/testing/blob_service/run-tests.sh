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

AZURITE_VERSION=3.37.0
SDK_VERSION=12.31.1

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../../.." && pwd)
HERE=$ROOT/tools/testing/blob_service
CACHE=${HVAB_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/hv_azure_blob}
export CARGO_BUILD_JOBS=${CARGO_BUILD_JOBS:-1}
PKG=azure_blob_service

say() { printf '[%s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { say "error: $*"; exit 1; }

WORK=$(mktemp -d "${TMPDIR:-/tmp}/blob-service-tests.XXXXXX")
AZURITE_PID=
HTTPD_PID=
cleanup() {
	local rc=$?
	set +e
	for pid in $AZURITE_PID $HTTPD_PID; do
		kill "$pid" 2>/dev/null
		wait "$pid" 2>/dev/null
	done
	rm -rf "$WORK"
	exit "$rc"
}
trap cleanup EXIT INT TERM

# ---- installs (idempotent, cached) -------------------------------------------
install_azurite() {
	local dir=$CACHE/azurite
	local have=
	if [ -f "$dir/node_modules/azurite/package.json" ]; then
		have=$(node -p "require('$dir/node_modules/azurite/package.json').version")
	fi
	if [ "$have" != "$AZURITE_VERSION" ]; then
		say "installing azurite@$AZURITE_VERSION into $dir"
		mkdir -p "$dir"
		npm install --prefix "$dir" --no-audit --no-fund --loglevel=error \
			"azurite@$AZURITE_VERSION" >&2
	fi
	AZURITE_BLOB=$dir/node_modules/.bin/azurite-blob
	[ -x "$AZURITE_BLOB" ] || die "azurite-blob missing after install"
}

install_sdk() {
	local venv=$CACHE/pyvenv
	PY=$venv/bin/python
	if ! { [ -x "$PY" ] && "$PY" -c "
import sys
from importlib.metadata import version
sys.exit(version('azure-storage-blob') != '$SDK_VERSION')" 2>/dev/null; }; then
		say "installing azure-storage-blob==$SDK_VERSION into $venv"
		python3 -m venv "$venv"
		"$PY" -m pip install --quiet --disable-pip-version-check \
			"azure-storage-blob==$SDK_VERSION" >&2
	fi
}

# Waits for "listening" evidence: a port file or a log line; prints the port.
wait_port_file() {
	local file=$1 pid=$2
	for _ in $(seq 100); do
		[ -s "$file" ] && { cat "$file"; return 0; }
		kill -0 "$pid" 2>/dev/null || return 1
		sleep 0.1
	done
	return 1
}

start_azurite() {
	local log=$WORK/azurite.log
	"$AZURITE_BLOB" --blobHost 127.0.0.1 --blobPort 0 --inMemoryPersistence --skipApiVersionCheck \
		--disableTelemetry >"$log" 2>&1 &
	AZURITE_PID=$!
	for _ in $(seq 150); do
		AZURITE_PORT=$(sed -n 's|.*successfully listens on http://127\.0\.0\.1:\([0-9]*\).*|\1|p' "$log")
		[ -n "$AZURITE_PORT" ] && return 0
		kill -0 "$AZURITE_PID" 2>/dev/null || break
		sleep 0.2
	done
	cat "$log" >&2
	die "Azurite did not start"
}

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
