#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
# Installs everything the project needs on a Debian 12 machine, idempotently.
# A second run downloads and rebuilds nothing.
#   - Debian packages: rustc-web + rust-web-src (the kernel's Rust), libclang-22,
#     kernel build dependencies, QEMU, busybox-static, dkms (to check dkms.conf);
#   - bindgen-cli (crates.io) into the cache;
#   - the newest linux-source-7.* from trixie-backports (downloaded, not installed),
#     unpacked once into a pristine tree in the cache.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

APT="apt-get -o DPkg::Lock::Timeout=900 -q"
SUDO=; [ "$(id -u)" = 0 ] || SUDO=sudo

PKGS="rustc-web rust-web-src libclang-22-dev clang-22 lld-22 llvm-22 flex bison bc libelf-dev libssl-dev cpio
busybox-static xz-utils zstd dwarves python3 kmod gcc make libc6-dev qemu-system-x86
pkg-config dkms"

missing=()
for p in $PKGS; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done

# trixie-backports carries linux-source-7.*: add it with pin priority 1 so that
# nothing else on the machine is ever upgraded from it.
SRCFILE=/etc/apt/sources.list.d/hv-azure-blob-trixie-backports.sources
PINFILE=/etc/apt/preferences.d/hv-azure-blob-trixie-backports
need_update=0
if [ ! -f "$SRCFILE" ]; then
	say "adding trixie-backports (pin priority 1) for linux-source-7.*"
	$SUDO tee "$SRCFILE" >/dev/null <<'EOS'
Types: deb
URIs: http://deb.debian.org/debian
Suites: trixie-backports
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOS
	$SUDO tee "$PINFILE" >/dev/null <<'EOS'
Package: *
Pin: release n=trixie-backports
Pin-Priority: 1
EOS
	need_update=1
fi

if [ ${#missing[@]} -gt 0 ] || [ $need_update = 1 ]; then
	say "apt-get update"
	$SUDO $APT update >"$HVAB_CACHE/apt-update.log" 2>&1 || die "apt-get update failed (see $HVAB_CACHE/apt-update.log)"
fi
if [ ${#missing[@]} -gt 0 ]; then
	say "installing Debian packages: ${missing[*]}"
	# QEMU comes from bookworm (7.2) unless one is already installed.
	$SUDO $APT install -y --no-install-recommends -t bookworm "${missing[@]}" \
		>"$HVAB_CACHE/apt-install.log" 2>&1 || die "apt-get install failed (see $HVAB_CACHE/apt-install.log)"
fi

if [ ! -x "$HVAB_TOOLS/bin/bindgen" ]; then
	say "installing bindgen-cli 0.72.1 from crates.io (about a minute)"
	cargo install --locked bindgen-cli@0.72.1 --root "$HVAB_TOOLS" -j"$(nproc)" \
		>"$HVAB_CACHE/bindgen-install.log" 2>&1 || die "cargo install bindgen-cli failed (see $HVAB_CACHE/bindgen-install.log)"
fi

# The newest linux-source-7.* the archive offers; the cached .deb is reused.
mkdir -p "$HVAB_CACHE/debs" "$HVAB_CACHE/src"
pkg=
if [ -f "$HVAB_CACHE/kernel-package" ] && ls "$HVAB_CACHE/debs/$(cat "$HVAB_CACHE/kernel-package")"_*.deb >/dev/null 2>&1; then
	pkg=$(cat "$HVAB_CACHE/kernel-package")
else
	pkg=$(apt-cache pkgnames linux-source-7. 2>/dev/null | grep -E '^linux-source-7\.[0-9]+$' | sort -V | tail -n1 || true)
	if [ -z "$pkg" ]; then
		say "apt-get update (looking for linux-source-7.*)"
		$SUDO $APT update >"$HVAB_CACHE/apt-update.log" 2>&1 || true
		pkg=$(apt-cache pkgnames linux-source-7. 2>/dev/null | grep -E '^linux-source-7\.[0-9]+$' | sort -V | tail -n1 || true)
	fi
	[ -n "$pkg" ] || die "no linux-source-7.* package found in trixie-backports (apt-cache pkgnames linux-source-7. is empty)"
	say "downloading $pkg"
	(cd "$HVAB_CACHE/debs" && $APT download "$pkg" >/dev/null) || die "apt-get download $pkg failed"
	echo "$pkg" >"$HVAB_CACHE/kernel-package"
fi
deb=$(ls "$HVAB_CACHE/debs/${pkg}"_*.deb | sort -V | tail -n1)
debver=$(dpkg-deb -f "$deb" Version)
if [ ! -f "$HVAB_CACHE/src/$pkg-$debver.stamp" ]; then
	say "unpacking $pkg $debver"
	tmp=$(mktemp -d "$HVAB_CACHE/src/unpack.XXXX")
	dpkg -x "$deb" "$tmp"
	tarball=$(ls "$tmp"/usr/src/linux-source-7.*.tar.* | head -n1)
	rm -rf "$HVAB_CACHE/src/$pkg-$debver"
	mkdir -p "$HVAB_CACHE/src/$pkg-$debver"
	tar -xf "$tarball" -C "$HVAB_CACHE/src/$pkg-$debver" --strip-components=1
	rm -rf "$tmp"
	touch "$HVAB_CACHE/src/$pkg-$debver.stamp"
fi
ksrc=$HVAB_CACHE/src/$pkg-$debver
kver=$(make -s -C "$ksrc" kernelversion)
echo "$kver" >"$HVAB_CACHE/kernel-version.new"
echo "$ksrc" >"$HVAB_CACHE/kernel-source"
mv "$HVAB_CACHE/kernel-version.new" "$HVAB_CACHE/kernel-version"
say "kernel source: $pkg $debver (Linux $kver) in $ksrc"
