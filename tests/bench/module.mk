# tests/bench: benchmark programs, run by tests/bench/run.sh (`make bench`).
# Each benchmark registers its program here as an ordinary BINS entry.

# Kernels and thread pool: memory bandwidth, matvec GB/s, matmul GFLOP/s.
BINS += bench-kernels
bench-kernels_SRCS := tests/bench/bench_kernels.c
bench-kernels_DEPS := runtime
bench-kernels_LDLIBS :=
