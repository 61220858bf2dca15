# SPDX-License-Identifier: GPL-2.0
# hv_azure_blob: top-level entry points.
#
#   make demo     boot the test guest with the host simulator and send a
#                 request through /dev/azure_blob
#   make check    every test: userspace (fmt, clippy, cargo test, the
#                 helpers' suites) and the guest suites on the main and the
#                 debug (KASAN, lockdep, kmemleak) kernels
#   make bench    print the benchmarks' figures (driver overhead, blob
#                 service vs Azurite, Blobstore vs raw file)
#   make setup    install the toolchain and fetch the kernel source (cached)
#   make modules  build hv_azure_blob.ko against $(KDIR) (default: the test
#                 bed's kernel), as any out-of-tree module: make -C $KDIR M=$PWD
#   make modules_install
#                 install it: make -C $KDIR M=$PWD modules_install, which
#                 honours INSTALL_MOD_PATH (and INSTALL_MOD_DIR, default
#                 "updates") and runs depmod
#   make install-c-api PREFIX=/usr/local
#                 build the C API (libazure_blob.so/.a) and install it with
#                 azure_blob.h and azure_blob.pc into $(PREFIX)
#
# Everything big lives in $HVAB_CACHE (default ~/.cache/hv_azure_blob);
# build products and logs of this checkout in out/.

T := tools/testing/hv_azure_blob

.PHONY: all setup kernel modules modules_install demo check bench guest-check guest-client guest-check-debug c-api-check install-c-api clean

all: modules

setup:
	@bash $(T)/setup.sh

kernel: setup
	@bash $(T)/kernel.sh main >/dev/null

# With KDIR set, the test bed's kernel is neither built nor used.
ifeq ($(KDIR),)
modules: kernel
endif
modules:
	@bash -c '. $(T)/lib.sh; $(MAKE) -C "$${KDIR:-$$(hvab_kernel_dir main)}" M=$(CURDIR) $$HVAB_KMAKE_FLAGS modules'

# INSTALL_MOD_PATH, INSTALL_MOD_DIR and INSTALL_MOD_STRIP reach kbuild from
# the command line or the environment.
modules_install: modules
	@bash -c '. $(T)/lib.sh; $(MAKE) -C "$${KDIR:-$$(hvab_kernel_dir main)}" M=$(CURDIR) $$HVAB_KMAKE_FLAGS modules_install'

demo: kernel
	@bash $(T)/run-guest.sh main demo

check:
	@bash $(T)/check.sh

# Figures, not tests: the driver's per-request overhead (guest), the blob
# service vs Azurite, the Blobstore vs the raw file.
bench: kernel
	@bash $(T)/run-guest.sh main bench
	@bash tools/testing/blob_service/bench.sh
	@cargo run -q --release --locked -p blobstore --bin blobstore-bench

guest-check: kernel
	@bash $(T)/run-guest.sh main selftest

# The client API, the azblob CLI and the samples: in the guest through the
# driver, then on the host over the simulator's HTTP door.
guest-client: kernel
	@bash $(T)/run-guest.sh main client

guest-check-debug: setup
	@bash $(T)/run-guest.sh debug selftest

# The C API: its tests (no guest), and an install into $(PREFIX).
PREFIX ?= /usr/local
c-api-check:
	@bash tools/testing/azure_blob_c/run-tests.sh

install-c-api:
	@cargo build --release --locked -p azure_blob_c
	@bash tools/lib/azure_blob_c/install.sh $(PREFIX)

clean:
	@bash -c '. $(T)/lib.sh; k=$$(hvab_kernel_dir main); [ -d "$$k" ] && $(MAKE) -C "$$k" M=$(CURDIR) clean >/dev/null; $(MAKE) -C "$$k" M=$(CURDIR)/tools/testing/vmbus_sim clean >/dev/null; true'
	rm -rf out target
