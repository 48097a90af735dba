# tests/vm/module.mk: cross-architecture testing hooks.
#
# - ARCH=arm64 on an x86-64 host: unit-test programs run under qemu-user
#   (Debian's qemu-aarch64-static; the arm64 multiarch libraries that the
#   build linked against are where the aarch64 loader looks, so no -L is
#   needed). tests/run.sh puts $(TEST_WRAPPER) in front of each program.
# - make test-vm: builds the tree for x86_64 and arm64 and boots Debian's
#   6.1 cloud kernels under QEMU (software emulation) with the integration
#   suite in an initramfs; see tests/vm/run.sh. `make test` ends with the
#   same run (below).
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

# make test runs the VMs last (tests/run.sh counts their lines with the
# rest): by default when the build is the host's own, unsanitized one, which
# is then also the x86-64 VM's build. TEST_VM=0 leaves them out. A VM whose
# prerequisites this machine lacks (qemu, the cross compiler, Debian's archive
# for the kernel) is a SKIP with the reason there, a FAIL in make test-vm
# (VM_REQUIRE=1).
TEST_VM ?= $(if $(SANITIZE),0,$(if $(filter $(HOST_ARCH),$(ARCH)),1,0))
vm_spec = $(a)=$(if $(and $(filter $(a),$(HOST_ARCH)),$(1)),$(BUILD),$(VM_BUILD_$(a)))
# the environment of tests/vm/run.sh; $(1) non-empty: the host build serves
# as the host arch's VM build
vm_env = VM_TIMEOUT=$(VM_TIMEOUT) VM_CACHE=$(VM_CACHE) VM_MAKE='$(MAKE) --no-print-directory' \
	VM_SPECS='$(foreach a,$(VM_ARCHES),$(vm_spec))'
TEST_ENV += RUN_VM=$(TEST_VM) VM_REQUIRE=$(or $(VM_REQUIRE),0) $(call vm_env,host)
# the VMs' builds are sub-makes started by a script: '+' hands them make's
# jobserver (-j). (Like every recursive make, make -n test then runs it.)
TEST_PLUS := $(if $(filter 1,$(TEST_VM)),+)

.PHONY: test-vm
test-vm:
	$(Q)+$(vm_env) VM_REQUIRE=$(or $(VM_REQUIRE),1) TESTDATA=$(TESTDATA) sh tests/vm/run.sh $(foreach a,$(VM_ARCHES),$(call vm_spec))
