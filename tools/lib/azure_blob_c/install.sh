#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-only OR MIT
#
# Installs libazure_blob (the C API of the user library) into a prefix:
#   PREFIX/include/azure_blob.h
#   PREFIX/lib/libazure_blob.so.VERSION, .so.MAJOR (the SONAME) and .so
#   PREFIX/lib/libazure_blob.a
#   PREFIX/lib/pkgconfig/azure_blob.pc
#
# Usage: tools/lib/azure_blob_c/install.sh PREFIX [BUILD_DIR]
# after `cargo build --release -p azure_blob_c`. BUILD_DIR is where cargo
# put the libraries (default: target/release, or $CARGO_TARGET_DIR/release);
# for the guest's static build it is
# out/guest-target/x86_64-unknown-linux-gnu/release, where only the .a may
# exist. Then: PKG_CONFIG_PATH=PREFIX/lib/pkgconfig pkg-config --cflags --libs azure_blob
# Running it again replaces the files (idempotent).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../../.." && pwd)

[ $# -ge 1 ] && [ $# -le 2 ] || { echo "usage: $0 PREFIX [BUILD_DIR]" >&2; exit 2; }
prefix=$(realpath -m "$1")
build=${2:-${CARGO_TARGET_DIR:-$root/target}/release}
[ -d "$build" ] || { echo "install.sh: no build directory $build (run: cargo build --release -p azure_blob_c)" >&2; exit 1; }
build=$(realpath "$build")

version=$(sed -n 's/^version = "\(.*\)"$/\1/p' "$here/Cargo.toml" | head -n 1)
major=${version%%.*}
# The Rust standard library's system libraries (see azure_blob.pc.in).
libs_private="-lpthread -ldl -lm -lrt -lutil"

[ -f "$build/libazure_blob.a" ] || { echo "install.sh: no $build/libazure_blob.a (run: cargo build --release -p azure_blob_c)" >&2; exit 1; }

install -d "$prefix/include" "$prefix/lib/pkgconfig"
install -m 0644 "$here/include/azure_blob.h" "$prefix/include/azure_blob.h"
install -m 0644 "$build/libazure_blob.a" "$prefix/lib/libazure_blob.a"
if [ -f "$build/libazure_blob.so" ]; then
	install -m 0755 "$build/libazure_blob.so" "$prefix/lib/libazure_blob.so.$version"
	ln -sfn "libazure_blob.so.$version" "$prefix/lib/libazure_blob.so.$major"
	ln -sfn "libazure_blob.so.$major" "$prefix/lib/libazure_blob.so"
else
	echo "install.sh: no libazure_blob.so in $build (a static-only build): installing the static library only" >&2
fi
sed -e "s|@PREFIX@|$prefix|g" -e "s|@VERSION@|$version|g" -e "s|@LIBS_PRIVATE@|$libs_private|g" \
	"$here/azure_blob.pc.in" >"$prefix/lib/pkgconfig/azure_blob.pc"
chmod 0644 "$prefix/lib/pkgconfig/azure_blob.pc"

echo "installed libazure_blob $version from $build into $prefix:"
(cd "$prefix" && find include/azure_blob.h lib/libazure_blob.* lib/pkgconfig/azure_blob.pc | sed 's/^/  /')
