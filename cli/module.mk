# cli/: edgectl, the operator's command line (profile, tune, supervise, revert).
BINS += edgectl
edgectl_SRCS := $(sort $(wildcard cli/*.c))
edgectl_DEPS := controller collectors
edgectl_LDLIBS :=
