# bpf/: CO-RE programs (x.bpf.c) and their loaders (x.c).
LIBS += bpfprogs
bpfprogs_SRCS := $(sort $(filter-out %.bpf.c,$(wildcard bpf/*.c)))
bpfprogs_DEPS :=
bpfprogs_LDLIBS := -lbpf -lelf -lz
