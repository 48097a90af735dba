# controller/: policies, actuators (cgroup v1/v2, affinity, core admin), revert state.
LIBS += controller
controller_SRCS := $(sort $(wildcard controller/*.c))
controller_DEPS := collectors
controller_LDLIBS := -lcgroup -linih -ljansson -lcurl -lmicrohttpd
