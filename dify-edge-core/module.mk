# dify-edge-core: the inference runtime library and the dify-edge binary.
# The core depends on nothing else in the tree (design rule).

ifeq ($(ARCH),x86_64)
runtime_isa_exclude := %_neon.c
else ifeq ($(ARCH),arm64)
runtime_isa_exclude := %_avx2.c %_avx512.c
else
runtime_isa_exclude := %_neon.c %_avx2.c %_avx512.c
endif

LIBS += runtime
runtime_SRCS := $(filter-out $(runtime_isa_exclude),$(sort $(wildcard dify-edge-core/runtime/*.c)))
runtime_DEPS :=
runtime_LDLIBS := -lm -lpcre2-8

BINS += dify-edge
dify-edge_SRCS := $(sort $(wildcard dify-edge-core/app/*.c))
dify-edge_DEPS := server runtime
dify-edge_LDLIBS := $(JEMALLOC_LDLIBS)

# dify-edge serve: HTTP API, scheduler, knowledge base, cache, limiter, admin.
LIBS += server
server_SRCS := $(sort $(wildcard dify-edge-core/server/*.c))
server_DEPS := runtime
server_LDLIBS := -lmicrohttpd -ljansson -lsqlite3
