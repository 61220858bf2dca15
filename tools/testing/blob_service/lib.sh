# SPDX-License-Identifier: GPL-2.0-only OR MIT
# Shared by run-tests.sh and bench.sh. Sourced, not run.

AZURITE_VERSION=3.37.0
SDK_VERSION=12.31.1

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../../.." && pwd)
HERE=$ROOT/tools/testing/blob_service
CACHE=${HVAB_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/hv_azure_blob}
export CARGO_BUILD_JOBS=${CARGO_BUILD_JOBS:-1}
PKG=azure_blob_service

say() { printf '[%s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { say "error: $*"; exit 1; }

# Installs are idempotent and cached outside the repository.
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
	"$AZURITE_BLOB" --blobHost 127.0.0.1 --blobPort 0 --inMemoryPersistence --skipApiVersionCheck --silent \
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


# Makes $WORK under the checkout's git-ignored out/ (not /tmp, which other
# jobs clean), and at exit stops the servers whose pids are in AZURITE_PID and
# HTTPD_PID and removes $WORK, keeping the script's exit status.
setup_work() {
	mkdir -p "$ROOT/out"
	WORK=$(mktemp -d "$ROOT/out/$1.XXXXXX")
	AZURITE_PID=
	HTTPD_PID=
	trap cleanup_work EXIT INT TERM
}

cleanup_work() {
	local rc=$?
	set +e
	for pid in $AZURITE_PID $HTTPD_PID; do
		kill "$pid" 2>/dev/null
		wait "$pid" 2>/dev/null
	done
	rm -rf "$WORK"
	exit "$rc"
}
