# tests/bench: benchmark programs, run by tests/bench/run.sh (`make bench`).
# Each benchmark registers its program here as an ordinary BINS entry.

# Kernels and thread pool: memory bandwidth, matvec GB/s, matmul GFLOP/s.
BINS += bench-kernels
bench-kernels_SRCS := tests/bench/bench_kernels.c
bench-kernels_DEPS := runtime
bench-kernels_LDLIBS :=

# Collectors: BPF cost per sched_switch and throughput lost to tracing (helper "bpf").
BINS += bench-collectors
bench-collectors_SRCS := tests/bench/bench_collectors.c
bench-collectors_DEPS := bpfprogs
bench-collectors_LDLIBS :=

# Server: HNSW build time, recall@10 and query latency (helper "server").
BINS += bench-hnsw
bench-hnsw_SRCS := tests/bench/bench_hnsw.c
bench-hnsw_DEPS := server
bench-hnsw_LDLIBS :=

# Server: client-side time to first token of streamed completions (helper "server").
BINS += bench-ttft
bench-ttft_SRCS := tests/bench/bench_ttft.c
bench-ttft_DEPS :=
bench-ttft_LDLIBS :=
