#!/bin/sh
# SPDX-License-Identifier: GPL-2.0-only OR MIT
# usage: azblob_cli_test.sh AZBLOB [CONTAINER]
#
# Tests the azblob command line as a script uses it: every command, its
# output, and the exit codes a script branches on. POSIX sh (the guest runs
# it with busybox). The transport comes from the environment: in the guest
# /dev/azure_blob; on the host AZBLOB_TRANSPORT=http AZBLOB_ENDPOINT=URL.
# Prints KTAP.
az=${1:?usage: azblob_cli_test.sh AZBLOB [CONTAINER]}
c=${2:-cli-test}
t=${TMPDIR:-/tmp}/azblob-cli.$$
mkdir -p "$t" || exit 1
trap 'rm -rf "$t"' EXIT
n=0 failed=0
echo "KTAP version 1"
echo "1..15"
tap() { # tap NAME RC [WHY]
	n=$((n + 1))
	if [ "$2" = 0 ]; then echo "ok $n $1"; else failed=$((failed + 1)); echo "# $1: ${3:-failed}"; echo "not ok $n $1"; fi
}
# run EXPECTED-EXIT-CODE ARGS...: the exit code must be the expected one.
run() {
	want=$1; shift
	"$az" -q "$@" >"$t/out" 2>"$t/err"; rc=$?
	[ "$rc" = "$want" ] && return 0
	echo "# azblob $*: exit code $rc, expected $want: $(cat "$t/err")"
	return 1
}

# Fixtures: a small file, a large one (parallel blocks), block files.
dd if=/dev/urandom of="$t/small" bs=1000 count=7 2>/dev/null
dd if=/dev/urandom of="$t/big" bs=1048576 count=20 2>/dev/null
printf 'alpha-' >"$t/b1"; printf 'beta' >"$t/b2"

run 0 mb "$c"; tap make_container $?
run 3 mb "$c"; tap make_existing_container_exits_3 $?
r=0; run 0 cp "$t/small" "az://$c/docs/small.bin" || r=1
run 0 cp "$t/big" "az://$c/big.bin" --parallel 4 || r=1
tap upload_small_and_big_in_parallel_blocks $r
r=0; run 0 ls || r=1; grep -qx "$c" "$t/out" || { r=1; echo "# ls: $c not listed"; }
tap ls_lists_the_container $r
r=0; run 0 ls "az://$c"; r=$?
grep -q ' 7000  docs/small.bin$' "$t/out" && grep -q ' 20971520  big.bin$' "$t/out" || { r=1; cat "$t/out" | sed 's/^/# /'; }
tap ls_lists_blobs_with_sizes $r
r=0; run 0 ls "az://$c/" --delimiter / || r=1
grep -q 'DIR  docs/$' "$t/out" && ! grep -q 'small.bin' "$t/out" || { r=1; sed 's/^/# /' "$t/out"; }
tap ls_delimiter_shows_directories $r
r=0; run 0 cp "az://$c/big.bin" "$t/back" || r=1
cmp -s "$t/big" "$t/back" || { r=1; echo "# the downloaded big file differs"; }
tap download_matches $r
r=0; run 0 cat "az://$c/big.bin" --offset 1048576 --length 4096 || r=1
dd if="$t/big" of="$t/expect" bs=4096 skip=256 count=1 2>/dev/null
cmp -s "$t/out" "$t/expect" || { r=1; echo "# the range differs"; }
tap cat_a_range $r
r=0; run 0 stat "az://$c/docs/small.bin" || r=1
grep -qx 'size: 7000' "$t/out" && grep -qx 'type: Block' "$t/out" && grep -q '^etag: "' "$t/out" || { r=1; sed 's/^/# /' "$t/out"; }
tap stat_shows_properties $r
r=0; run 0 put-block "az://$c/staged" one "$t/b1" || r=1
run 0 put-block "az://$c/staged" two "$t/b2" || r=1
run 0 blocks "az://$c/staged" || r=1
grep -q '^uncommitted .* one$' "$t/out" || { r=1; sed 's/^/# /' "$t/out"; }
run 0 commit "az://$c/staged" two one || r=1
run 0 cat "az://$c/staged" || r=1
[ "$(cat "$t/out")" = "betaalpha-" ] || { r=1; echo "# committed content: $(cat "$t/out")"; }
tap put_block_commit_blocks $r
r=0; run 2 stat "az://$c/missing" || r=1
run 2 cat "az://nosuchcontainer/x" || r=1
run 2 cp "az://$c/missing" "$t/never" || r=1
[ ! -e "$t/never" ] || { r=1; echo "# a failed download left a file"; }
tap not_found_exits_2_and_leaves_no_file $r
r=0; run 1 cp "$t/small" "$t/other" || r=1
run 1 cat "not-a-blob-name" || r=1
run 1 cp "$t/nonexistent" "az://$c/x" || r=1
run 1 --no-such-option ls || r=1
run 1 cp "$t/small" || r=1
run 1 cp "az://$c/docs/small.bin" "$t/no-such-dir/file" || r=1
grep -q 'no-such-dir/file.partial' "$t/err" || { r=1; echo "# the local error does not name the file: $(cat "$t/err")"; }
run 0 --help || r=1
grep -q 'Exit codes' "$t/out" || { r=1; echo "# --help does not explain the exit codes"; }
tap usage_and_local_errors_exit_1 $r
r=0; mkdir -p "$t/into" || r=1
run 0 cp "$t/small" "az://$c/into/" || r=1
run 0 stat "az://$c/into/small" || r=1
run 0 cp "az://$c/into/small" "$t/into" || r=1
cmp -s "$t/small" "$t/into/small" || { r=1; echo "# cp into a directory: $(ls "$t/into")"; }
run 0 rm "az://$c/into/small" || r=1
tap cp_into_a_directory_keeps_the_name $r
r=0; "$az" -q rm "az://$c/docs/small.bin" >"$t/out" 2>&1 || r=1
[ ! -s "$t/out" ] || { r=1; echo "# -q printed: $(cat "$t/out")"; }
run 2 rm "az://$c/docs/small.bin" || r=1
tap rm_quiet_then_missing $r
r=0; run 0 rb "$c" || r=1
run 2 ls "az://$c" || r=1
tap remove_container $r
echo "# azblob_cli_test: $((n - failed)) passed, $failed failed"
[ "$failed" = 0 ]
