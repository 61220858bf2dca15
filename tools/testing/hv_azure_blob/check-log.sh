#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
# usage: check-log.sh SERIAL.LOG LABEL SECONDS [HOST.LOG]
# Reads a guest serial log: the KTAP of the guest programs and the init's
# HVAB-RESULT lines, plus every kernel report that must fail a run. HOST.LOG,
# if given, holds the results of the host-side programs of the same run.
set -uo pipefail
log=$1 label=$2 secs=$3 host=${4:-/dev/null}
grep -E 'HVAB-RESULT|^(not )?ok [0-9]|^# ' "$log" | sed 's/^/    /'
[ "$host" = /dev/null ] || { echo "  on the host:"; grep -E 'HVAB-RESULT|^(not )?ok [0-9]|^# ' "$host" | sed 's/^/    /'; }
passed=$(cat "$log" "$host" | grep -cE '^HVAB-RESULT: ok|^ok [0-9]')
failed=$(cat "$log" "$host" | grep -cE '^HVAB-RESULT: not ok|^not ok [0-9]')
reports=$(grep -nE 'WARNING:|BUG:|BUG kmalloc|Oops|KASAN|UBSAN|possible circular locking|possible recursive locking|inconsistent lock state|suspicious RCU usage|INFO: task .* blocked|unreferenced object|Kernel panic|general protection fault|Call Trace' "$log" | head -n 20)
if [ -n "$reports" ]; then
	echo "guest kernel reports in $log:"
	echo "$reports"
	failed=$((failed + 1))
fi
grep -q 'HVAB: done, powering off' "$log" || { echo "the guest did not finish (see $log)"; failed=$((failed + 1)); }
printf 'guest %s: %s passed, %s failed in %.1f s\n' "$label" "$passed" "$failed" "$secs"
[ "$failed" = 0 ] && [ "$passed" -gt 0 ]
