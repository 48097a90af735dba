# dify-edge: one Makefile for the whole tree.
#
# DESIGN
# Every component directory holds a module.mk that registers what it builds:
#   LIBS += name          a static library build/<..>/lib/libname.a
#     name_SRCS           its C sources
#     name_DEPS           other LIBS it uses (link order follows)
#     name_LDLIBS         external libraries it needs
#   BINS += name          a program build/<..>/bin/name
#     name_SRCS, name_DEPS, name_LDLIBS   as above
#   GENHDRS += file       headers generated before any object is compiled
# Unit tests are found, not registered: tests/unit/<lib>/test_*.c is a cmocka
# program linked against lib<lib> and everything it depends on. Integration
# tests are tests/integration/*.sh; fuzz targets tests/fuzz/<lib>/fuzz_*.c.
#
# Objects go out of tree under $(BUILD); changing CFLAGS, SANITIZE, ARCH or
# CROSS_COMPILE rebuilds (the flags are recorded in $(BUILD)/.flags).
# Quiet by default; V=1 prints full commands.

.DELETE_ON_ERROR:
.SUFFIXES:
MAKEFLAGS += --no-builtin-rules --no-builtin-variables
.DEFAULT_GOAL := all

comma := ,
empty :=
space := $(empty) $(empty)

HOST_ARCH := $(shell uname -m | sed -e 's/aarch64/arm64/' -e 's/amd64/x86_64/')
ARCH ?= $(HOST_ARCH)
ifeq ($(ARCH),$(HOST_ARCH))
CROSS_COMPILE ?=
else ifeq ($(ARCH),arm64)
CROSS_COMPILE ?= aarch64-linux-gnu-
else
CROSS_COMPILE ?=
endif

V ?= 0
SANITIZE ?=
CFLAGS ?= -O2 -g
EXTRA_CFLAGS ?=
EXTRA_LDFLAGS ?=
FUZZ_TIME ?= 60
FUZZ_SEED ?=
FUZZ_RUNS ?=
TESTDATA ?= $(abspath ../shared/testdata)

CC := $(CROSS_COMPILE)gcc
AR := $(CROSS_COMPILE)ar
CLANG ?= clang
LLVM_STRIP ?= llvm-strip
BPFTOOL ?= bpftool

BUILD ?= build/$(ARCH)$(if $(SANITIZE),-san-$(subst $(comma),-,$(SANITIZE)))
OBJ := $(BUILD)/obj
LIBDIR := $(BUILD)/lib
BINDIR := $(BUILD)/bin
TESTDIR := $(BUILD)/tests
GENDIR := $(BUILD)/gen

ifeq ($(V),1)
Q :=
msg = @true
else
Q := @
msg = @printf '  %-8s %s\n' "$(1)" "$(2)";
endif

WARN := -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes -Wmissing-prototypes \
	-Wno-unused-parameter -Wformat=2 -Wvla
BASE_CFLAGS := -std=gnu11 -fno-strict-aliasing -D_GNU_SOURCE -pthread $(WARN) \
	-I. -I$(GENDIR) -MMD -MP
SAN_FLAGS := $(if $(SANITIZE),-fsanitize=$(SANITIZE) -fno-omit-frame-pointer -fno-sanitize-recover=all)
ALL_CFLAGS := $(BASE_CFLAGS) $(CFLAGS) $(SAN_FLAGS) $(EXTRA_CFLAGS)
ALL_LDFLAGS := -pthread $(SAN_FLAGS) $(EXTRA_LDFLAGS)

# jemalloc is the allocator of the core's binaries; a sanitizer brings its own
# malloc, so sanitized builds leave jemalloc out (code looks mallctl up weakly).
# Debian's libjemalloc-dev is not co-installable across architectures, so a
# cross build links the foreign libjemalloc2's libjemalloc.so.2 by file name.
JEMALLOC_LDLIBS := $(if $(SANITIZE),,$(if $(CROSS_COMPILE),-l:libjemalloc.so.2,-ljemalloc))

# Per-ISA kernel files are named for their ISA and get its flags; the rest of
# the code is built for the baseline and picks a version at run time.
ifeq ($(ARCH),x86_64)
isa_flags = $(if $(filter %_avx2.c,$(1)),-mavx2 -mfma -mf16c,)$(if $(filter %_avx512.c,$(1)),-mavx512f -mavx512bw -mavx512vl -mavx512vnni -mfma -mf16c,)
else ifeq ($(ARCH),arm64)
isa_flags = $(if $(filter %_neon.c,$(1)),-march=armv8.2-a+dotprod+fp16,)
else
isa_flags =
endif

LIBS :=
BINS :=
GENHDRS :=
MODULES := $(sort $(wildcard */module.mk */*/module.mk))
include $(MODULES)

# Flags file: rewritten only when the flags change, so objects depend on it.
FLAGS_SIG := $(CC) $(ALL_CFLAGS) $(ALL_LDFLAGS) $(ARCH)
$(shell mkdir -p $(BUILD) && if [ ! -f $(BUILD)/.flags ] || [ "$$(cat $(BUILD)/.flags)" != '$(FLAGS_SIG)' ]; then printf '%s' '$(FLAGS_SIG)' > $(BUILD)/.flags; fi)

objs = $(patsubst %.c,$(OBJ)/%.o,$(1))

# deps_closure(name): name's libs followed by theirs, depth first, deduplicated
# from the right so that a library comes after every library that uses it.
define uniq_right
$(if $(1),$(call uniq_right,$(filter-out $(lastword $(1)),$(1))) $(lastword $(1)))
endef
lib_closure = $(foreach d,$(1),$(d) $(call lib_closure,$($(d)_DEPS)))
dedup_keep_last = $(strip $(if $(1),$(if $(filter $(firstword $(1)),$(wordlist 2,$(words $(1)),$(1))),,$(firstword $(1))) $(call dedup_keep_last,$(wordlist 2,$(words $(1)),$(1)))))
link_libs = $(call dedup_keep_last,$(call lib_closure,$(1)))
lib_files = $(foreach l,$(1),$(LIBDIR)/lib$(l).a)
lib_ldlibs = $(foreach l,$(1),$($(l)_LDLIBS))

$(OBJ)/%.o: %.c $(BUILD)/.flags | $(GENHDRS)
	$(call msg,CC,$<)
	@mkdir -p $(@D)
	$(Q)$(CC) $(ALL_CFLAGS) $(call isa_flags,$<) -c $< -o $@

define LIB_template
$(LIBDIR)/lib$(1).a: $(call objs,$($(1)_SRCS))
	$$(call msg,AR,$$@)
	@mkdir -p $$(@D)
	$(Q)rm -f $$@ && $(AR) rcs $$@ $$^
endef
$(foreach l,$(LIBS),$(eval $(call LIB_template,$(l))))

define BIN_template
$(BINDIR)/$(1): $(call objs,$($(1)_SRCS)) $(call lib_files,$(call link_libs,$($(1)_DEPS)))
	$$(call msg,LD,$$@)
	@mkdir -p $$(@D)
	$(Q)$(CC) $(ALL_LDFLAGS) -o $$@ $(call objs,$($(1)_SRCS)) $(call lib_files,$(call link_libs,$($(1)_DEPS))) $($(1)_LDLIBS) $(call lib_ldlibs,$(call link_libs,$($(1)_DEPS))) -lm
endef
$(foreach b,$(BINS),$(eval $(call BIN_template,$(b))))

UNIT_SRCS := $(sort $(wildcard tests/unit/*/test_*.c))
UNIT_BINS := $(patsubst tests/unit/%.c,$(TESTDIR)/%,$(UNIT_SRCS))
unit_lib = $(word 3,$(subst /, ,$(1)))
define UNIT_template
$(patsubst tests/unit/%.c,$(TESTDIR)/%,$(1)): $(call objs,$(1)) $(call lib_files,$(call link_libs,$(call unit_lib,$(1))))
	$$(call msg,LD,$$@)
	@mkdir -p $$(@D)
	$(Q)$(CC) $(ALL_LDFLAGS) -o $$@ $(call objs,$(1)) $(call lib_files,$(call link_libs,$(call unit_lib,$(1)))) $(call lib_ldlibs,$(call link_libs,$(call unit_lib,$(1)))) -lcmocka -lm
endef
$(foreach t,$(UNIT_SRCS),$(eval $(call UNIT_template,$(t))))

ALL_TARGETS := $(foreach l,$(LIBS),$(LIBDIR)/lib$(l).a) $(foreach b,$(BINS),$(BINDIR)/$(b))

.PHONY: all
all: $(ALL_TARGETS)

.PHONY: test-build
test-build: all $(UNIT_BINS)

# make test: unit tests, then integration tests driving the real binaries,
# then (TEST_ENV from tests/vm/module.mk) the same suite in QEMU VMs;
# tests/run.sh prints the closing "N passed, N failed, N skipped" line.
.PHONY: test test-unit test-integration
test: test-build
	$(Q)$(TEST_PLUS)$(TEST_ENV) BUILD=$(BUILD) TESTDATA=$(TESTDATA) SANITIZE='$(SANITIZE)' ARCH=$(ARCH) sh tests/run.sh all
test-unit: test-build
	$(Q)BUILD=$(BUILD) TESTDATA=$(TESTDATA) SANITIZE='$(SANITIZE)' ARCH=$(ARCH) sh tests/run.sh unit
test-integration: test-build
	$(Q)BUILD=$(BUILD) TESTDATA=$(TESTDATA) SANITIZE='$(SANITIZE)' ARCH=$(ARCH) sh tests/run.sh integration

# Fuzz targets: clang + libFuzzer + ASan/UBSan, built in their own tree. Each
# source is compiled on its own (with its ISA's flags, like the normal build);
# a target links its fuzz_*.c with the objects of its library and their deps.
FUZZ_SRCS := $(sort $(wildcard tests/fuzz/*/fuzz_*.c))
FUZZ_BUILD := build/fuzz
FUZZ_OBJ := $(FUZZ_BUILD)/obj
FUZZ_SAN := -fsanitize=fuzzer,address,undefined -fno-omit-frame-pointer
FUZZ_CFLAGS := $(BASE_CFLAGS) -O1 -g $(FUZZ_SAN) \
	-DFUZZING_BUILD_MODE_UNSAFE_FOR_PRODUCTION -Wno-unused-command-line-argument
fuzz_lib = $(word 3,$(subst /, ,$(1)))
fuzz_objs = $(patsubst %.c,$(FUZZ_OBJ)/%.o,$(1) $(foreach l,$(call link_libs,$(call fuzz_lib,$(1))),$($(l)_SRCS)))

$(FUZZ_OBJ)/%.o: %.c | $(GENHDRS)
	$(call msg,FUZZCC,$<)
	@mkdir -p $(@D)
	$(Q)$(CLANG) $(FUZZ_CFLAGS) $(call isa_flags,$<) -c $< -o $@

define FUZZ_template
$(FUZZ_BUILD)/$(basename $(notdir $(1))): $(call fuzz_objs,$(1))
	$$(call msg,FUZZLD,$$@)
	@mkdir -p $$(@D)
	$(Q)$(CLANG) $(FUZZ_SAN) -pthread -o $$@ $$(filter %.o,$$^) $(call lib_ldlibs,$(call link_libs,$(call fuzz_lib,$(1)))) -lm
endef
$(foreach f,$(FUZZ_SRCS),$(eval $(call FUZZ_template,$(f))))
FUZZ_BINS := $(foreach f,$(FUZZ_SRCS),$(FUZZ_BUILD)/$(basename $(notdir $(f))))

.PHONY: fuzz fuzz-build
fuzz-build: $(FUZZ_BINS)
fuzz: fuzz-build
	$(Q)FUZZ_BUILD=$(FUZZ_BUILD) FUZZ_TIME=$(FUZZ_TIME) FUZZ_SEED=$(FUZZ_SEED) FUZZ_RUNS=$(FUZZ_RUNS) sh tests/fuzz/run.sh $(FUZZ_BINS)

.PHONY: bench
bench: all
	$(Q)BUILD=$(BUILD) TESTDATA=$(TESTDATA) sh tests/bench/run.sh

.PHONY: demo
demo: all
	$(Q)BUILD=$(BUILD) sh scripts/demo.sh

.PHONY: setup
setup:
	$(Q)sh scripts/setup.sh

.PHONY: clean
clean:
	rm -rf build

-include $(shell find $(BUILD) $(FUZZ_BUILD) -name '*.d' 2>/dev/null)
