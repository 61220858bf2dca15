#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
# usage: run-guest.sh VARIANT MODE      VARIANT = main|debug, MODE = selftest|demo|client|bench
#
# Builds the modules for the variant's kernel, the static guest programs and
# the host simulator; boots the guest under QEMU (TCG) with its RAM shared
# with the simulator and an ivshmem-doorbell device for the simulated VMBus;
# collects the results from the serial console. Fails on any failed test and
# on any WARNING, BUG, Oops, KASAN, lockdep or kmemleak report in the guest log.
# Logs stay in out/logs/VARIANT-MODE-TIME/ (the last one also as out/logs/latest).
set -euo pipefail
. "$(dirname "$0")/lib.sh"
variant=${1:?usage: run-guest.sh main|debug selftest|demo|client|bench}
mode=${2:-selftest}
O=$(hvab_kernel_dir "$variant")
[ -f "$O/.hvab-built" ] || O=$("$HVAB_ROOT/tools/testing/hv_azure_blob/kernel.sh" "$variant")
kflags="$HVAB_KMAKE_FLAGS $(hvab_variant_flags "$variant")"
out=$HVAB_OUT/$variant
logs=$HVAB_OUT/logs/$variant-$mode-$(date +%Y%m%d-%H%M%S)
mkdir -p "$out" "$logs"
ln -sfn "$logs" "$HVAB_OUT/logs/latest"

# 1. Modules: the product module against the real hv_vmbus exports of this
#    kernel (modpost checks them), and the simulated bus. Warnings fail the build.
build_module() { # DIR KO
	local dir=$1 ko=$2 name log
	name=$(basename "$ko" .ko)
	log=$logs/build-$name.log
	if ! make -C "$O" M="$dir" $kflags W=1 modules >"$log" 2>&1; then
		tail -n 40 "$log" >&2
		die "building $name failed (see $log)"
	fi
	if grep -E '(^|[^-])(warning|error)(\[|:)' "$log" >&2; then
		die "building $name gave warnings (see $log)"
	fi
	cp "$dir/$ko" "$out/"
}
say "building hv_azure_blob.ko and vmbus_sim.ko for the $variant kernel"
build_module "$HVAB_ROOT" drivers/hv/azure_blob/hv_azure_blob.ko
build_module "$HVAB_ROOT/tools/testing/vmbus_sim" vmbus_sim.ko
cp "$HVAB_ROOT/tools/testing/vmbus_sim/azure_blob_bench.ko" "$out/"
modinfo -F depends "$out/hv_azure_blob.ko" | grep -qx hv_vmbus ||
	die "hv_azure_blob.ko was not linked against hv_vmbus's exports"
# The module alias udev matches against the device's MODALIAS (the guest
# checks the device side): "vmbus:" + the class id in guid_t byte order.
modinfo -F alias "$out/hv_azure_blob.ko" | grep -qx vmbus:92b7900564dbcc4581dbb8d70c577c9e ||
	die "hv_azure_blob.ko lacks the vmbus:92b7900564dbcc4581dbb8d70c577c9e alias (modinfo: $(modinfo -F alias "$out/hv_azure_blob.ko"))"

# 2. Static guest programs and the host simulator.
say "building the guest programs (static) and the host simulator"
RUSTFLAGS="-C target-feature=+crt-static" cargo build -q --release --locked \
	--target x86_64-unknown-linux-gnu --target-dir "$HVAB_OUT/guest-target" \
	-p hv_azure_blob_selftests -p azure_blob -p hv_azure_blob_samples -p azure_blob_c >"$logs/build-guest.log" 2>&1 ||
	{ tail -n 30 "$logs/build-guest.log" >&2; die "building the guest programs failed"; }
gbin=$HVAB_OUT/guest-target/x86_64-unknown-linux-gnu/release
gcc -static -O2 -Wall -Werror -I "$HVAB_ROOT/include/uapi" -o "$out/azure_blob_raw" \
	"$HVAB_ROOT/samples/hv_azure_blob/azure_blob_raw.c" 2>"$logs/build-samples.log" ||
	{ cat "$logs/build-samples.log" >&2; die "building the C sample failed"; }
# The C library (static: the guest has no dynamic loader), installed with its
# pkg-config file; the C sample and the C API test linked against it.
"$HVAB_ROOT/tools/lib/azure_blob_c/install.sh" "$out/capi" "$gbin" >>"$logs/build-samples.log" 2>&1 ||
	{ cat "$logs/build-samples.log" >&2; die "installing the C library failed"; }
capi_flags=$(PKG_CONFIG_PATH=$out/capi/lib/pkgconfig pkg-config --static --cflags --libs azure_blob)
for c in samples/hv_azure_blob/azure_blob_lib.c tools/testing/selftests/hv_azure_blob/c/azure_blob_c_test.c; do
	# (glibc's static-link notes about getaddrinfo/getpwuid_r do not concern the device)
	gcc -static -O2 -Wall -Wextra -Werror -o "$out/$(basename "$c" .c)" "$HVAB_ROOT/$c" $capi_flags -lpthread \
		>>"$logs/build-samples.log" 2>&1 ||
		{ cat "$logs/build-samples.log" >&2; die "building $c on the C library failed"; }
done
cargo build -q --release --locked -p azure_blob_vsp -p hv_azure_blob_selftests -p azure_blob -p hv_azure_blob_samples >"$logs/build-vsp.log" 2>&1 ||
	{ tail -n 30 "$logs/build-vsp.log" >&2; die "building the host simulator failed"; }
vsp=$HVAB_ROOT/target/release/azure-blob-vsp
broker=$HVAB_ROOT/target/release/azure-blob-broker

"$HVAB_ROOT/tools/testing/hv_azure_blob/initramfs.sh" "$out/initramfs.cpio.gz" \
	"$out/vmbus_sim.ko" "$out/hv_azure_blob.ko" "$out/azure_blob_bench.ko" -- \
	"$gbin/azure_blob_selftest" "$gbin/azure_blob_demo" "$gbin/azure_blob_bench" "$gbin/azblob" "$out/azure_blob_raw" \
	"$gbin/azure_blob_client_test" "$gbin/azure_blob_sample" "$HVAB_ROOT/tools/testing/selftests/hv_azure_blob/azblob_cli_test.sh" \
	"$out/azure_blob_lib" "$out/azure_blob_c_test"

# 3. Boot. Guest RAM is a file on tmpfs shared by QEMU and the simulator
#    (below 2.75 GiB on q35, a file offset is the guest physical address).
mem=512
[ "$variant" = debug ] && mem=1024
run=$(mktemp -d /dev/shm/hvab-run.XXXXXX)
vsp_pid=
cleanup() {
	local rc=$?
	if [ -n "$vsp_pid" ]; then
		kill "$vsp_pid" 2>/dev/null || true
		wait "$vsp_pid" 2>/dev/null || true
	fi
	rm -rf "$run"
	exit $rc
}
trap cleanup EXIT
truncate -s ${mem}M "$run/guest-ram"
# The selftests check the echo handler's answers byte for byte; the demo
# talks to the blob service on a persistent Blobstore file, so a second run
# finds the blobs of the first.
vsp_args=(--handler echo)
if [ "$mode" = demo ]; then
	vsp_args=(--handler blob --store "$HVAB_OUT/demo.blobstore")
	[ -f "$HVAB_OUT/demo.blobstore" ] && say "the demo's Blobstore exists: $HVAB_OUT/demo.blobstore (blobs of earlier runs are kept)"
fi
# The client tests: the blob service in memory, with its HTTP door open too.
[ "$mode" = client ] && vsp_args=(--handler blob --memory --http 127.0.0.1:0)
# The broker is QEMU's ivshmem server and the control socket for the VM's
# life; it runs the simulator and starts another when one dies (a selftest
# crashes it on purpose), which takes over the open channels.
"$broker" --ivshmem-socket "$run/ivsh.sock" --control-socket "$run/ctl.sock" \
	--broker-socket "$run/broker.sock" -- "$vsp" --broker "$run/broker.sock" \
	--guest-ram "$run/guest-ram" "${vsp_args[@]}" >"$logs/vsp.log" 2>&1 &
vsp_pid=$!
for _ in $(seq 1 100); do [ -S "$run/ivsh.sock" ] && [ -S "$run/ctl.sock" ] && break; sleep 0.05; done
[ -S "$run/ivsh.sock" ] || { cat "$logs/vsp.log" >&2; die "the host simulator did not start"; }

say "booting the $variant guest ($mode) under QEMU TCG; serial log: $logs/serial.log"
start=$(date +%s.%N)
timeout 900 qemu-system-x86_64 -accel tcg -cpu max -smp 2 -m ${mem}M -nodefaults -display none -no-reboot \
	-chardev stdio,id=con,signal=off -device isa-serial,chardev=con,index=0 \
	-object memory-backend-file,id=mem,size=${mem}M,mem-path="$run/guest-ram",share=on \
	-machine q35,memory-backend=mem \
	-chardev socket,id=ivsh,path="$run/ivsh.sock" \
	-device ivshmem-doorbell,chardev=ivsh,vectors=5 \
	-chardev socket,id=ctl,path="$run/ctl.sock" -device isa-serial,chardev=ctl,index=1 \
	-kernel "$O/arch/x86/boot/bzImage" -initrd "$out/initramfs.cpio.gz" \
	-append "console=ttyS0 panic=-1 oops=panic panic_on_warn=0 hvab.mode=$mode" \
	</dev/null >"$logs/serial.log" 2>&1 &
qemu_pid=$!
# Without the broker the guest would wait for its host until the timeout:
# when the broker is gone (it gives up after repeated simulator deaths),
# stop the guest at once and say so.
while kill -0 "$qemu_pid" 2>/dev/null; do
	if ! kill -0 "$vsp_pid" 2>/dev/null; then
		say "the host side (broker and simulator) exited while the guest ran: stopping the guest; see $logs/vsp.log"
		echo "HVAB-RESULT: not ok host_side_alive # the broker exited during the run" >>"$logs/serial.log"
		kill "$qemu_pid" 2>/dev/null || true
		break
	fi
	sleep 0.5
done
qemu_rc=0
wait "$qemu_pid" || qemu_rc=$?
[ "$qemu_rc" = 0 ] || say "QEMU exited with status $qemu_rc"
secs=$(echo "$(date +%s.%N) - $start" | bc)

# 3b. Client mode, on the host: the same scenario, command line and sample
#     over the simulator's HTTP door, on the store the guest just used.
host_log=
if [ "$mode" = client ]; then
	host_log=$logs/host.log
	: >"$host_log"
	url=$(sed 's/\x1b\[[0-9;]*m//g' "$logs/vsp.log" | grep -o 'HTTP door: http://[^ ]*' | head -n 1 | cut -d' ' -f3)
	hbin=$HVAB_ROOT/target/release
	if [ -z "$url" ]; then
		echo "HVAB-RESULT: not ok host_http_door # the simulator did not report its HTTP door" >>"$host_log"
	else
		say "the same scenario on the host over $url"
		host_test() { # host_test NAME COMMAND...
			local name=$1 rc=0; shift
			"$@" >>"$host_log" 2>&1 || rc=$?
			if [ "$rc" = 0 ]; then echo "HVAB-RESULT: ok $name" >>"$host_log"; else echo "HVAB-RESULT: not ok $name # exit code $rc" >>"$host_log"; fi
		}
		host_test client_api_scenario_http "$hbin/azure_blob_client_test" --transport http --endpoint "$url" --handoff check
		host_test azblob_cli_http env AZBLOB_TRANSPORT=http AZBLOB_ENDPOINT="$url" TMPDIR="$run" \
			sh "$HVAB_ROOT/tools/testing/selftests/hv_azure_blob/azblob_cli_test.sh" "$hbin/azblob" cli-http
		host_test sample_rust_client_api_http "$hbin/azure_blob_sample" --http "$url"
	fi
fi
kill "$vsp_pid" 2>/dev/null || true

# 4. Results.
if [ "$mode" = bench ]; then
	grep -ahE 'BENCH (kernel|driver):' "$logs/serial.log" | sed 's/^\[ *[0-9.]*\] //; s/^/  /'
	k=$(grep -aoE 'BENCH kernel: .* ([0-9]+) per second' "$logs/serial.log" | grep -oE '[0-9]+ per second' | grep -oE '[0-9]+')
	u=$(grep -aoE 'BENCH driver: .* ([0-9]+) per second' "$logs/serial.log" | grep -oE '[0-9]+ per second' | grep -oE '[0-9]+')
	[ -n "$k" ] && [ -n "$u" ] && echo "  driver round trips per second / kernel baseline: $(echo "scale=2; $u / $k" | bc)"
fi
if [ "$mode" = demo ]; then
	echo "What happened in the guest:"
	sed -n '/^HVAB: demo begins/,/^HVAB: demo ends/p' "$logs/serial.log" | grep -av '^HVAB: demo' | grep -av '^\[ *[0-9.]*\]' | sed 's/^/  /'
	echo "What the host simulator did:"
	sed 's/\x1b\[[0-9;]*m//g' "$logs/vsp.log" | grep -aE 'INFO|WARN|ERROR' | sed 's/^[^ ]* *//; s/^/  /' | head -n 20
fi
"$HVAB_ROOT/tools/testing/hv_azure_blob/check-log.sh" "$logs/serial.log" "$variant $mode" "$secs" $host_log
