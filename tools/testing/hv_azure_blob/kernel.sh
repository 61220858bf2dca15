#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
# usage: kernel.sh main|debug
# Builds the test-bed kernel of a variant out of tree (O=) from the pristine
# source in the cache: tinyconfig + configs/common.config + configs/VARIANT.config.
# The build directory is keyed by kernel version and config hash, and a finished
# build is never redone. Prints the build directory on stdout.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
variant=${1:?usage: kernel.sh main|debug}
cfgdir=$HVAB_ROOT/tools/testing/hv_azure_blob/configs
[ -f "$cfgdir/$variant.config" ] || die "unknown kernel variant '$variant' (no $cfgdir/$variant.config)"
ksrc=$(cat "$HVAB_CACHE/kernel-source" 2>/dev/null) || die "no kernel source: run 'make setup' first"
O=$(hvab_kernel_dir "$variant")
HVAB_KMAKE_FLAGS="$HVAB_KMAKE_FLAGS $(hvab_variant_flags "$variant")"
if [ -f "$O/.hvab-built" ]; then
	echo "$O"
	exit 0
fi
mkdir -p "$O"
log=$O/build.log
say "configuring Linux $(hvab_kernel_version) ($variant) in $O"
{
	make -C "$ksrc" O="$O" $HVAB_KMAKE_FLAGS tinyconfig
	"$ksrc/scripts/kconfig/merge_config.sh" -O "$O" -m "$O/.config" "$cfgdir/common.config" "$cfgdir/$variant.config"
	make -C "$ksrc" O="$O" $HVAB_KMAKE_FLAGS olddefconfig
} >"$O/config.log" 2>&1 || die "kernel configuration failed (see $O/config.log)"
# Every option the fragments ask for must have taken: a silently dropped option
# (an unmet dependency) would give a kernel that does not test what we think.
bad=0
while read -r line; do
	case "$line" in
	CONFIG_*=*) opt=${line%%=*}; want=$line ;;
	"# CONFIG_"*" is not set") opt=${line#\# }; opt=${opt%% *}; want=$line ;;
	*) continue ;;
	esac
	got=$(grep -E "^($opt=|# $opt is not set)" "$O/.config" || echo "# $opt is not set")
	if [ "$got" != "$want" ]; then
		say "config: asked for '$want', got '$got'"
		bad=1
	fi
done < <(cat "$cfgdir/common.config" "$cfgdir/$variant.config")
[ $bad = 0 ] || die "kernel configuration does not match the fragments (see $O/config.log)"
say "building Linux $(hvab_kernel_version) ($variant) with -j$(nproc): 5-10 minutes on 2 cores; log: $log"
start=$(date +%s)
(
	make -C "$ksrc" O="$O" $HVAB_KMAKE_FLAGS -j"$(nproc)" bzImage modules >"$log" 2>&1
) &
pid=$!
while kill -0 $pid 2>/dev/null; do
	sleep 30
	kill -0 $pid 2>/dev/null && say "  still building ($variant): $(( $(date +%s) - start ))s, $(grep -c '^  [A-Z]' "$log" || true) steps done"
done
wait $pid || { tail -n 30 "$log" >&2; die "kernel build failed (see $log)"; }
[ -f "$O/drivers/hv/hv_vmbus.ko" ] || die "kernel built but drivers/hv/hv_vmbus.ko is missing"
touch "$O/.hvab-built"
say "kernel ($variant) built in $(( $(date +%s) - start ))s"
echo "$O"
