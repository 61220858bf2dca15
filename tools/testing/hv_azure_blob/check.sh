#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
# The whole test suite (make check). Runs every step even when one fails,
# and ends with one line: "N passed, M failed" over all tests of all steps.
# HVAB_SKIP_DEBUG=1 skips the debug-kernel guest run.
set -uo pipefail
. "$(dirname "$0")/lib.sh"
cd "$HVAB_ROOT"
total_start=$(date +%s)
passed=0 failed=0 steps=()
logdir=$HVAB_OUT/logs/check-$(date +%Y%m%d-%H%M%S)
mkdir -p "$logdir"

# step NAME COMMAND...: runs it, adds its test counts (from cargo's "test
# result" lines or a final "N passed, M failed" line; else 1 for the step).
step() {
	local name=$1; shift
	local log=$logdir/$name.log t0=$(date +%s) rc p f
	say "== $name"
	"$@" 2>&1 | tee "$log" | grep -E --line-buffered '^\[..:..:..\]|passed, .* failed|^error|FAILED|panicked'
	rc=${PIPESTATUS[0]}
	p=$(grep -oE 'test result: [a-zA-Z]+\. [0-9]+ passed; [0-9]+ failed' "$log" | awk '{p+=$4; f+=$6} END {print p+0}')
	f=$(grep -oE 'test result: [a-zA-Z]+\. [0-9]+ passed; [0-9]+ failed' "$log" | awk '{p+=$4; f+=$6} END {print f+0}')
	if [ "$p" = 0 ] && [ "$f" = 0 ]; then
		line=$(grep -E '[0-9]+ passed, [0-9]+ failed' "$log" | tail -n1)
		p=$(echo "$line" | grep -oE '[0-9]+ passed' | grep -oE '[0-9]+' || echo 0)
		f=$(echo "$line" | grep -oE '[0-9]+ failed' | grep -oE '[0-9]+' || echo 0)
	fi
	[ -n "$p" ] || p=0
	[ -n "$f" ] || f=0
	if [ "$rc" != 0 ] && [ "$f" = 0 ]; then f=1; fi
	if [ "$p" = 0 ] && [ "$f" = 0 ]; then p=1; fi
	passed=$((passed + p)) failed=$((failed + f))
	steps+=("$(printf '%-28s %s  %4s passed %3s failed  %4ss' "$name" "$([ "$rc" = 0 ] && echo PASS || echo FAIL)" "$p" "$f" "$(( $(date +%s) - t0 ))")")
}

step setup bash "$HVAB_ROOT/tools/testing/hv_azure_blob/setup.sh"
step kernel-main bash "$HVAB_ROOT/tools/testing/hv_azure_blob/kernel.sh" main
step modules-install bash "$HVAB_ROOT/tools/testing/hv_azure_blob/modules-install.sh"
step dkms bash "$HVAB_ROOT/tools/testing/hv_azure_blob/dkms.sh"
step rustfmt cargo fmt --all --check
step clippy cargo clippy --workspace --all-targets --locked -- -D warnings
step cargo-test cargo test --workspace --locked
for suite in tools/testing/*/run-tests.sh; do
	[ -f "$suite" ] || continue
	step "$(basename "$(dirname "$suite")")" bash "$suite"
done
step guest-main bash "$HVAB_ROOT/tools/testing/hv_azure_blob/run-guest.sh" main selftest
step guest-demo bash "$HVAB_ROOT/tools/testing/hv_azure_blob/run-guest.sh" main demo
step guest-client bash "$HVAB_ROOT/tools/testing/hv_azure_blob/run-guest.sh" main client
if [ "${HVAB_SKIP_DEBUG:-0}" != 1 ]; then
	step kernel-debug bash "$HVAB_ROOT/tools/testing/hv_azure_blob/kernel.sh" debug
	step guest-debug bash "$HVAB_ROOT/tools/testing/hv_azure_blob/run-guest.sh" debug selftest
	step guest-debug-client bash "$HVAB_ROOT/tools/testing/hv_azure_blob/run-guest.sh" debug client
fi

echo
echo "Summary (logs in $logdir):"
printf '  %s\n' "${steps[@]}"
echo "  total time: $(( $(date +%s) - total_start ))s"
echo "$passed passed, $failed failed"
[ "$failed" = 0 ]
