# bpf/: CO-RE programs (x.bpf.c) and their loaders (x.c).
#
# x.bpf.c is compiled by clang for the BPF target against vmlinux.h, stripped
# of DWARF (BTF stays), and turned into $(GENDIR)/bpf/x.skel.h by bpftool; the
# skeletons are GENHDRS, so every object of the tree waits for them.
# vmlinux.h comes from the running kernel's BTF when building for this
# machine's architecture and $(VMLINUX_BTF) is readable; otherwise (cross
# builds, kernels without BTF) from the checked-in minimal CO-RE header
# bpf/vmlinux/$(ARCH)/vmlinux.h. VMLINUX_H=fallback forces the latter.
LIBS += bpfprogs
bpfprogs_SRCS := $(sort $(filter-out %.bpf.c,$(wildcard bpf/*.c)))
bpfprogs_DEPS :=
bpfprogs_LDLIBS := -lbpf -lelf -lz

VMLINUX_BTF ?= /sys/kernel/btf/vmlinux
VMLINUX_H ?= $(if $(and $(filter $(ARCH),$(HOST_ARCH)),$(wildcard $(VMLINUX_BTF))),btf,fallback)
BPF_TARGET_ARCH := $(if $(filter x86_64,$(ARCH)),x86,$(if $(filter arm64,$(ARCH)),arm64,$(ARCH)))
BPF_CFLAGS := -g -O2 -target bpf -D__TARGET_ARCH_$(BPF_TARGET_ARCH) -I$(GENDIR)/bpf -I. \
	-Wall -Werror -Wno-unused-function -MMD -MP
BPF_PROGS := $(sort $(wildcard bpf/*.bpf.c))
BPF_OBJS := $(patsubst bpf/%.bpf.c,$(OBJ)/bpf/%.bpf.o,$(BPF_PROGS))
BPF_SKELS := $(patsubst bpf/%.bpf.c,$(GENDIR)/bpf/%.skel.h,$(BPF_PROGS))
GENHDRS += $(BPF_SKELS)
.SECONDARY: $(BPF_OBJS) $(BPF_SKELS) $(GENDIR)/bpf/vmlinux.h

$(GENDIR)/bpf/vmlinux.h: $(wildcard bpf/vmlinux/$(ARCH)/vmlinux.h)
	$(call msg,GEN,$@ ($(VMLINUX_H)))
	@mkdir -p $(@D)
ifeq ($(VMLINUX_H),btf)
	$(Q)$(BPFTOOL) btf dump file $(VMLINUX_BTF) format c > $@.tmp && mv $@.tmp $@
else
	$(Q)cp bpf/vmlinux/$(ARCH)/vmlinux.h $@
endif

$(OBJ)/bpf/%.bpf.o: bpf/%.bpf.c $(GENDIR)/bpf/vmlinux.h $(BUILD)/.flags
	$(call msg,BPF,$<)
	@mkdir -p $(@D)
	$(Q)$(CLANG) $(BPF_CFLAGS) -MF $(@:.o=.d) -MT $@ -c $< -o $@.tmp && $(LLVM_STRIP) -g $@.tmp -o $@ && rm -f $@.tmp

$(GENDIR)/bpf/%.skel.h: $(OBJ)/bpf/%.bpf.o
	$(call msg,SKEL,$@)
	@mkdir -p $(@D)
	$(Q)$(BPFTOOL) gen skeleton $< name $(subst .,_,$*)_bpf > $@.tmp && mv $@.tmp $@
