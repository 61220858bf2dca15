#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
# usage: initramfs.sh OUT.cpio.gz MODULE.ko... -- PROGRAM...
# Packs busybox-static, the modules (to /lib/hvab), the static programs (to
# /bin) and guest/init into a gzip'd newc cpio archive.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
out=$1; shift
root=$(mktemp -d "${TMPDIR:-/tmp}/hvab-initramfs.XXXXXX")
trap 'rm -rf "$root"' EXIT
mkdir -p "$root"/{bin,sbin,proc,sys,dev,tmp,lib/hvab}
cp /bin/busybox "$root/bin/busybox"
dest=lib/hvab
for f in "$@"; do
	if [ "$f" = -- ]; then dest=bin; continue; fi
	[ -f "$f" ] || die "initramfs: missing $f"
	cp "$f" "$root/$dest/"
done
cp "$HVAB_ROOT/tools/testing/hv_azure_blob/guest/init" "$root/init"
chmod +x "$root/init"
(cd "$root" && find . | cpio -o -H newc --quiet | gzip -1) >"$out"
