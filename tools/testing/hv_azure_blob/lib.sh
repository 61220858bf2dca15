# SPDX-License-Identifier: GPL-2.0
# Shared settings for the hv_azure_blob test-bed scripts. Sourced, not run.
# Everything big (downloads, kernel trees, builds) lives in the cache, outside
# the repository, keyed by version and configuration.

HVAB_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../../.." && pwd)
HVAB_CACHE=${HVAB_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/hv_azure_blob}
HVAB_TOOLS=$HVAB_CACHE/tools
HVAB_OUT=${HVAB_OUT:-$HVAB_ROOT/out}           # per-checkout build products and logs (git-ignored)
mkdir -p "$HVAB_CACHE" "$HVAB_OUT"

export LIBCLANG_PATH=/usr/lib/llvm-22/lib
export PATH=$HVAB_TOOLS/bin:$PATH
# rustup's rustc comes first in PATH and has no rust-src: the kernel must use Debian's.
HVAB_KMAKE_FLAGS="ARCH=x86_64 RUSTC=/usr/bin/rustc RUSTDOC=/usr/bin/rustdoc BINDGEN=$HVAB_TOOLS/bin/bindgen HOSTRUSTC=/usr/bin/rustc"

say() { printf '[%s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { printf '[%s] error: %s\n' "$(date +%H:%M:%S)" "$*" >&2; exit 1; }

# The kernel version in use (set by setup.sh, read by everything else).
hvab_kernel_version() {
	[ -f "$HVAB_CACHE/kernel-version" ] || die "no kernel source yet: run 'make setup' first"
	cat "$HVAB_CACHE/kernel-version"
}

# Build directory of a kernel variant: keyed by kernel version + config hash.
hvab_kernel_dir() {
	local variant=$1 ver hash
	ver=$(hvab_kernel_version)
	hash=$(cat "$HVAB_ROOT/tools/testing/hv_azure_blob/configs/common.config" \
		"$HVAB_ROOT/tools/testing/hv_azure_blob/configs/$variant.config" \
		"$HVAB_ROOT/tools/testing/hv_azure_blob/configs/$variant.make" 2>/dev/null | sha256sum | cut -c1-12)
	echo "$HVAB_CACHE/build/linux-$ver-$variant-$hash"
}

# Extra make variables of a kernel variant (e.g. LLVM=-22: Rust with KASAN
# needs a clang-built kernel). Modules for that kernel use the same.
hvab_variant_flags() {
	local f=$HVAB_ROOT/tools/testing/hv_azure_blob/configs/$1.make
	[ -f "$f" ] && cat "$f" || true
}

# check NAME COMMAND...: runs COMMAND (output to $check_log), prints a KTAP
# "ok/not ok NAME" line and counts it in $passed / $failed.
passed=0 failed=0 check_log=/dev/null
check() {
	local name=$1; shift
	if "$@" >>"$check_log" 2>&1; then
		echo "ok $name"; passed=$((passed + 1))
	else
		echo "not ok $name"; failed=$((failed + 1))
	fi
}
