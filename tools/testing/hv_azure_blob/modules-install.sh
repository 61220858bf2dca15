#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
# usage: modules-install.sh
# Checks `make modules_install` (the top Makefile's target) against the test
# bed's main kernel: into a temporary INSTALL_MOD_PATH, never into the system.
# The kernel's own modules (hv_vmbus among them) are installed there first, so
# depmod can resolve the driver's dependency. Ends with "N passed, M failed".
set -uo pipefail
. "$(dirname "$0")/lib.sh"

KDIR=$(hvab_kernel_dir main)
[ -f "$KDIR/.hvab-built" ] || die "the main kernel is not built: run 'make kernel' first"
VER=$(cat "$KDIR/include/config/kernel.release")
root=$(mktemp -d "${TMPDIR:-/tmp}/hvab-modinst.XXXXXX")
trap 'rm -rf "$root"' EXIT
mod=$root/lib/modules/$VER
check_log=$root/log


say "installing the kernel's modules and hv_azure_blob.ko into $root (Linux $VER)"
check kernel_modules_install make -s -C "$KDIR" $HVAB_KMAKE_FLAGS INSTALL_MOD_PATH="$root" modules_install
check make_modules_install make -s -C "$HVAB_ROOT" modules_install INSTALL_MOD_PATH="$root"
ko=$(find "$mod/updates" "$mod/extra" -name 'hv_azure_blob.ko*' 2>/dev/null | head -n1)
echo "# installed: ${ko#"$root"}"
check ko_under_updates_or_extra test -n "$ko"
check depmod_lists_it grep -q 'hv_azure_blob\.ko.*: .*hv_vmbus\.ko' "$mod/modules.dep"
check modinfo_finds_it bash -c "[ \"\$(modinfo -b '$root' -k '$VER' -F filename hv_azure_blob)\" = '$ko' ]"
check modinfo_depends_hv_vmbus bash -c "[ \"\$(modinfo -b '$root' -k '$VER' -F depends hv_azure_blob)\" = hv_vmbus ]"
# modprobe would load hv_vmbus first, then the driver.
check modprobe_loads_hv_vmbus_first bash -c "modprobe -d '$root' -S '$VER' --show-depends hv_azure_blob \
	| awk '{print \$2}' | xargs -n1 basename | tr '\n' ' ' | grep -qx 'hv_vmbus.ko hv_azure_blob.ko '"
# udev's "modprobe MODALIAS" when the host offers the device finds the driver.
check modprobe_resolves_the_device_modalias bash -c "modprobe -d '$root' -S '$VER' --show-depends \
	vmbus:92b7900564dbcc4581dbb8d70c577c9e | grep -q 'hv_azure_blob\.ko'"
[ "$failed" = 0 ] || { echo "# log:"; sed 's/^/# /' "$root/log"; }

echo "$passed passed, $failed failed"
[ "$failed" = 0 ]
