#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-only OR MIT
#
# Benchmark (prints figures, asserts nothing): our HTTP door vs Azurite on this
# machine, the same client (azure-blob-bench), one run. Both servers keep
# data in memory (Azurite: --inMemoryPersistence) and listen on loopback.
# Extra arguments go to azure-blob-bench (e.g. --seconds 5 --clients 16).
set -euo pipefail

# shellcheck source=tools/testing/blob_service/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

setup_work blob-service-bench

install_azurite
cd "$ROOT"
say "building release binaries"
cargo build --release -p "$PKG" --bins --quiet

"$ROOT/target/release/azure-blob-httpd" --listen 127.0.0.1:0 --port-file "$WORK/httpd.port" \
	2>"$WORK/httpd.log" &
HTTPD_PID=$!
HTTPD_PORT=$(wait_port_file "$WORK/httpd.port" "$HTTPD_PID") || die "azure-blob-httpd did not start"
start_azurite
say "ours on 127.0.0.1:$HTTPD_PORT, Azurite $AZURITE_VERSION on 127.0.0.1:$AZURITE_PORT"
say "machine: $(nproc) cores; $(uname -r); load average $(cut -d" " -f1-3 /proc/loadavg)"

"$ROOT/target/release/azure-blob-bench" \
	--target "ours=127.0.0.1:$HTTPD_PORT" \
	--target "azurite=127.0.0.1:$AZURITE_PORT" "$@"
