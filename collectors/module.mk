# collectors/: one snapshot per tick from BPF, procfs, cgroupfs, PSI and sysfs.
LIBS += collectors
collectors_SRCS := $(sort $(wildcard collectors/*.c))
collectors_DEPS := bpfprogs
collectors_LDLIBS := -ljansson
