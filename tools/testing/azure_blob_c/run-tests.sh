#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-only OR MIT
#
# Tests of the C API (tools/lib/azure_blob_c, libazure_blob), natively, with
# no guest:
#   1. build libazure_blob (release) and the host simulator (cargo -j1);
#   2. install the library, header and pkg-config file into a prefix under
#      out/azure_blob_c/ (tools/lib/azure_blob_c/install.sh);
#   3. compile, with `pkg-config --cflags --libs azure_blob` against that
#      prefix and -Wall -Wextra -Werror, the C test program
#      (tools/testing/selftests/hv_azure_blob/c/azure_blob_c_test.c) and the
#      sample (samples/hv_azure_blob/azure_blob_lib.c), the sample both
#      dynamically and statically (pkg-config --static, gcc -static);
#   4. start the simulator with its HTTP door (in-memory blob service; no
#      QEMU), run the test and both samples against it, stop it.
# Ends with "N passed, M failed" (the C test's checks plus one per other
# step). Idempotent: the prefix and binaries are rebuilt each run.
set -uo pipefail

# shellcheck source=tools/testing/hv_azure_blob/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/../hv_azure_blob/lib.sh"
cd "$HVAB_ROOT"

work=$HVAB_OUT/azure_blob_c
prefix=$work/prefix
bin=$work/bin
logs=$work/logs
CC=${CC:-cc}
export CARGO_BUILD_JOBS=${CARGO_BUILD_JOBS:-1}
target=${CARGO_TARGET_DIR:-$HVAB_ROOT/target}

passed=0 failed=0
result() { # result ok|fail WHAT
	if [ "$1" = ok ]; then
		passed=$((passed + 1))
		say "ok: $2"
	else
		failed=$((failed + 1))
		say "FAILED: $2"
	fi
}
finish() {
	echo "$passed passed, $failed failed"
	[ "$failed" = 0 ]
	exit
}

vsp_pid= run=
cleanup() {
	if [ -n "$vsp_pid" ]; then
		kill "$vsp_pid" 2>/dev/null || true
		wait "$vsp_pid" 2>/dev/null || true
	fi
	[ -n "$run" ] && rm -rf "$run"
	return 0
}
trap cleanup EXIT

rm -rf "$prefix" "$bin"
mkdir -p "$bin" "$logs"

say "building libazure_blob (cargo build --release -p azure_blob_c) and the simulator"
if ! cargo build --release -p azure_blob_c --locked 2>&1 | tail -n 3; then
	result fail "cargo build -p azure_blob_c"
	finish
fi
if ! cargo build -p azure_blob_vsp --bin azure-blob-vsp --locked 2>&1 | tail -n 3; then
	result fail "cargo build -p azure_blob_vsp"
	finish
fi

say "installing into $prefix"
if tools/lib/azure_blob_c/install.sh "$prefix" "$target/release" >"$logs/install.log" 2>&1; then
	sed 's/^/    /' "$logs/install.log" >&2
	result ok "install.sh"
else
	cat "$logs/install.log" >&2
	result fail "install.sh"
	finish
fi
export PKG_CONFIG_PATH=$prefix/lib/pkgconfig${PKG_CONFIG_PATH:+:$PKG_CONFIG_PATH}
if [ "$(pkg-config --modversion azure_blob 2>/dev/null)" = "$(sed -n 's/^version = "\(.*\)"$/\1/p' tools/lib/azure_blob_c/Cargo.toml)" ]; then
	result ok "pkg-config finds azure_blob $(pkg-config --modversion azure_blob)"
else
	result fail "pkg-config --modversion azure_blob"
fi
cflags=$(pkg-config --cflags azure_blob)
libs=$(pkg-config --libs azure_blob)
static_libs=$(pkg-config --static --libs azure_blob)
rpath=-Wl,-rpath,$(pkg-config --variable=libdir azure_blob)
say "pkg-config --cflags --libs azure_blob: $cflags $libs"

build() { # build NAME OUTPUT SOURCE FLAGS...
	local name=$1 out=$2 src=$3
	shift 3
	# shellcheck disable=SC2086 # pkg-config output is a list of words
	if "$CC" -std=c99 -Wall -Wextra -Werror -o "$out" "$src" "$@" >"$logs/$name.log" 2>&1; then
		result ok "compile $name"
	else
		cat "$logs/$name.log" >&2
		result fail "compile $name"
	fi
}
say "compiling the C test and the sample with $CC -Wall -Wextra -Werror"
# shellcheck disable=SC2086
build azure_blob_c_test "$bin/azure_blob_c_test" tools/testing/selftests/hv_azure_blob/c/azure_blob_c_test.c \
	$cflags $libs "$rpath" -lpthread
# shellcheck disable=SC2086
build azure_blob_lib "$bin/azure_blob_lib" samples/hv_azure_blob/azure_blob_lib.c $cflags $libs "$rpath"
# Static: glibc's linker warnings about getaddrinfo/getpwuid_r in static
# programs are expected (numeric addresses and /dev/azure_blob need no NSS).
# shellcheck disable=SC2086
build azure_blob_lib_static "$bin/azure_blob_lib_static" samples/hv_azure_blob/azure_blob_lib.c \
	-static $cflags $static_libs
if [ -x "$bin/azure_blob_lib_static" ]; then
	if file -L "$bin/azure_blob_lib_static" | grep -q 'statically linked'; then
		result ok "azure_blob_lib_static is statically linked"
	else
		result fail "azure_blob_lib_static is statically linked"
	fi
fi
if [ -x "$bin/azure_blob_c_test" ] && ldd "$bin/azure_blob_c_test" | grep -q "libazure_blob.so.0 => $prefix/lib/"; then
	result ok "azure_blob_c_test uses $prefix/lib/libazure_blob.so.0"
else
	result fail "azure_blob_c_test uses $prefix/lib/libazure_blob.so.0"
fi

say "starting the simulator with its HTTP door (no guest)"
run=$(mktemp -d "${TMPDIR:-/tmp}/azure_blob_c.XXXXXX")
truncate -s 16M "$run/guest-ram"
"$target/debug/azure-blob-vsp" --ivshmem-socket "$run/ivsh.sock" --guest-ram "$run/guest-ram" \
	--control-socket "$run/ctl.sock" --handler blob --memory --http 127.0.0.1:0 >"$logs/vsp.log" 2>&1 &
vsp_pid=$!
url=
for _ in $(seq 1 100); do
	url=$(sed 's/\x1b\[[0-9;]*m//g' "$logs/vsp.log" | grep -o 'HTTP door: http://[^ ]*' | head -n 1 | cut -d' ' -f3)
	[ -n "$url" ] && break
	kill -0 "$vsp_pid" 2>/dev/null || break
	sleep 0.1
done
if [ -z "$url" ]; then
	cat "$logs/vsp.log" >&2
	result fail "the simulator's HTTP door"
	finish
fi
say "the HTTP door: $url"

if [ -x "$bin/azure_blob_c_test" ]; then
	say "running azure_blob_c_test (every C API call, error paths included)"
	"$bin/azure_blob_c_test" "$url" >"$logs/azure_blob_c_test.log" 2>&1
	rc=$?
	grep -v '^ok ' "$logs/azure_blob_c_test.log" | sed 's/^/    /' >&2
	summary=$(grep -E '^[0-9]+ passed, [0-9]+ failed$' "$logs/azure_blob_c_test.log" | tail -n 1)
	if [ -n "$summary" ]; then
		p=${summary%% passed*}
		f=${summary#*passed, }
		f=${f%% failed}
		passed=$((passed + p)) failed=$((failed + f))
		[ "$rc" != 0 ] && [ "$f" = 0 ] && result fail "azure_blob_c_test exit code $rc"
		say "azure_blob_c_test: $summary"
	else
		result fail "azure_blob_c_test (no summary; exit code $rc)"
	fi
fi

for sample in azure_blob_lib azure_blob_lib_static; do
	[ -x "$bin/$sample" ] || continue
	say "running $sample --http $url"
	if "$bin/$sample" --http "$url" >"$logs/$sample.log" 2>&1 && grep -q 'azure_blob_lib: OK' "$logs/$sample.log"; then
		sed 's/^/    /' "$logs/$sample.log" >&2
		result ok "$sample over HTTP"
	else
		cat "$logs/$sample.log" >&2
		result fail "$sample over HTTP"
	fi
done
if [ -x "$bin/azure_blob_lib" ]; then
	rc=0
	"$bin/azure_blob_lib" --bad >/dev/null 2>&1 || rc=$?
	[ "$rc" = 2 ] && result ok "azure_blob_lib: bad usage exits 2" || result fail "azure_blob_lib: bad usage exits 2 (got $rc)"
	if [ ! -e /dev/azure_blob ]; then
		rc=0
		"$bin/azure_blob_lib" >"$logs/azure_blob_lib-vsc.log" 2>&1 || rc=$?
		if [ "$rc" = 1 ] && grep -q 'cannot open /dev/azure_blob' "$logs/azure_blob_lib-vsc.log"; then
			result ok "azure_blob_lib without /dev/azure_blob exits 1 and says why"
		else
			cat "$logs/azure_blob_lib-vsc.log" >&2
			result fail "azure_blob_lib without /dev/azure_blob exits 1 (got $rc)"
		fi
	fi
fi

say "stopping the simulator"
kill "$vsp_pid" 2>/dev/null
wait "$vsp_pid" 2>/dev/null
vsp_pid=
say "logs: $logs"
finish
