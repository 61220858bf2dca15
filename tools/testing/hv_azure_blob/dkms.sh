#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
# usage: dkms.sh
# Checks the repository's dkms.conf with the real dkms: add, build and install
# hv_azure_blob against the test bed's main kernel, with every DKMS tree
# (source, build, install) in a temporary directory, never in the system's.
# The source tree is the one the admin guide tells users to make: dkms.conf,
# Kbuild, drivers/hv/azure_blob/ and tools/lib/hv_azure_blob_proto/src/.
# Ends with "N passed, M failed".
set -uo pipefail
. "$(dirname "$0")/lib.sh"
command -v dkms >/dev/null || die "dkms is not installed: run 'make setup'"

KDIR=$(hvab_kernel_dir main)
[ -f "$KDIR/.hvab-built" ] || die "the main kernel is not built: run 'make kernel' first"
VER=$(cat "$KDIR/include/config/kernel.release")
PKG=$(sed -n 's/^PACKAGE_NAME="\(.*\)"/\1/p' "$HVAB_ROOT/dkms.conf")
PKGVER=$(sed -n 's/^PACKAGE_VERSION="\(.*\)"/\1/p' "$HVAB_ROOT/dkms.conf")
t=$(mktemp -d "${TMPDIR:-/tmp}/hvab-dkms.XXXXXX")
trap 'rm -rf "$t"' EXIT
mkdir -p "$t/src/$PKG-$PKGVER" "$t/dkms"
log=$t/log
check_log=$log


# DKMS runs plain `make`: the kernel's rustc (Debian's, in /usr/bin) must come
# before rustup's, and bindgen from the cache.
export PATH=$HVAB_TOOLS/bin:/usr/bin:$PATH
D=(dkms --dkmstree "$t/dkms" --sourcetree "$t/src" --installtree "$t/lib/modules")

say "dkms $PKG/$PKGVER against Linux $VER ($KDIR), trees in $t"
(cd "$HVAB_ROOT" && git ls-files -co --exclude-standard dkms.conf Kbuild drivers/hv/azure_blob \
	tools/lib/hv_azure_blob_proto/src | tar -c -T - | tar -x -C "$t/src/$PKG-$PKGVER")
# The kernel's own modules (hv_vmbus) give the install tree its version directory.
check kernel_modules_install make -s -C "$KDIR" $HVAB_KMAKE_FLAGS INSTALL_MOD_PATH="$t" modules_install
check dkms_add "${D[@]}" add -m "$PKG" -v "$PKGVER"
check dkms_build "${D[@]}" build -m "$PKG" -v "$PKGVER" -k "$VER" --kernelsourcedir "$KDIR"
check dkms_install "${D[@]}" install -m "$PKG" -v "$PKGVER" -k "$VER" --kernelsourcedir "$KDIR" --no-depmod
ko=$(find "$t/lib/modules/$VER/updates" -name 'hv_azure_blob.ko*' 2>/dev/null | head -n1)
echo "# installed: ${ko#"$t"}"
check ko_under_updates test -n "$ko"
check dkms_status_installed bash -c "${D[*]} status -m $PKG -v $PKGVER -k $VER | grep -q ': installed'"
check depmod_and_modinfo bash -c "depmod -b '$t' '$VER' && [ \"\$(modinfo -b '$t' -k '$VER' -F depends hv_azure_blob)\" = hv_vmbus ]"
check dkms_remove "${D[@]}" remove -m "$PKG" -v "$PKGVER" --all --no-depmod
check ko_gone_after_remove bash -c "! find '$t/lib/modules/$VER/updates' -name 'hv_azure_blob.ko*' | grep -q ."
# What the distribution's kernel hook (/etc/kernel/postinst.d/dkms) runs for
# a newly installed kernel: every added module with AUTOINSTALL="yes" is
# built and installed for it.
check dkms_add_again "${D[@]}" add -m "$PKG" -v "$PKGVER"
check dkms_autoinstall "${D[@]}" autoinstall -k "$VER" --kernelsourcedir "$KDIR" --no-depmod
check dkms_status_autoinstalled bash -c "${D[*]} status -m $PKG -v $PKGVER -k $VER | grep -q ': installed'"
check ko_after_autoinstall bash -c "find '$t/lib/modules/$VER/updates' -name 'hv_azure_blob.ko*' | grep -q ."
check dkms_remove_again "${D[@]}" remove -m "$PKG" -v "$PKGVER" --all --no-depmod
[ "$failed" = 0 ] || { echo "# log:"; sed 's/^/# /' "$log"; }
echo "$passed passed, $failed failed"
[ "$failed" = 0 ]
