# tests/vm/module.mk: cross-architecture testing hooks.
#
# - ARCH=arm64 on an x86-64 host: unit-test programs run under qemu-user
#   (Debian's qemu-aarch64-static; the arm64 multiarch libraries that the
#   build linked against are where the aarch64 loader looks, so no -L is
#   needed). tests/run.sh puts $(TEST_WRAPPER) in front of each program.
# - make test-vm: builds the tree for x86_64 and arm64 and boots Debian's
#   6.1 cloud kernels under QEMU (software emulation) with the integration
#   suite in an initramfs; see tests/vm/run.sh. Not part of `make test`.
ifneq ($(ARCH),$(HOST_ARCH))
ifeq ($(ARCH),arm64)
TEST_WRAPPER ?= qemu-aarch64-static
export TEST_WRAPPER
endif
endif

VM_BUILD_x86_64 ?= build/vm-x86_64
VM_BUILD_arm64 ?= build/vm-arm64
VM_ARCHES ?= x86_64 arm64
VM_TIMEOUT ?= 300
VM_CACHE ?= build/vm

.PHONY: test-vm
test-vm:
	$(Q)$(foreach a,$(VM_ARCHES),$(MAKE) --no-print-directory ARCH=$(a) BUILD=$(VM_BUILD_$(a)) all &&) true
	$(Q)VM_TIMEOUT=$(VM_TIMEOUT) VM_CACHE=$(VM_CACHE) TESTDATA=$(TESTDATA) sh tests/vm/run.sh $(foreach a,$(VM_ARCHES),$(a)=$(VM_BUILD_$(a)))
