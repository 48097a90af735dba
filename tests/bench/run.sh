#!/bin/sh
# tests/bench/run.sh: the `make bench` entry. Runs every benchmark section in
# turn and prints Markdown tables (docs/benchmarks*.md quote them).
#
# Sections are independent: each one is a block below, opened by a
# "section NAME" line, that checks its own prerequisites (skipping with a
# reason) and keeps itself bounded in time. To add a benchmark, append a
# section at the end; do not reorder the existing ones.
#
# Env: BUILD (build dir, required), TESTDATA (shared test data), BENCH_QUICK=1
# (shorter, noisier runs), BENCH_THREADS (largest thread count, default 2).
set -u
: "${BUILD:?BUILD must name the build directory}"
BIN=$BUILD/bin
BENCH_THREADS=${BENCH_THREADS:-2}
BENCH_QUICK=${BENCH_QUICK:-0}
status=0

section() { printf '\n# ==== %s ====\n\n' "$1"; }
# run_bounded SECONDS CMD...: run one benchmark, killed if it overruns
run_bounded() {
	t=$1; shift
	timeout -k 5 "$t" "$@"
	rc=$?
	if [ "$rc" -ne 0 ]; then
		echo "bench: $1 failed (exit $rc)"
		status=1
	fi
}

echo "# make bench: $(date -u '+%Y-%m-%d %H:%M UTC'), $(uname -m), $(nproc) CPUs"
echo "# CPU: $(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n 1)"

# ---------------------------------------------------------------------------
section "kernels and thread pool (tests/bench/bench_kernels.c)"
# Memory read bandwidth, matvec GB/s per type/ISA/threads at Qwen2-0.5B
# shapes, matmul GFLOP/s for a 128-row batch, pool dispatch cost. ~1 minute.
if [ -x "$BIN/bench-kernels" ]; then
	q=""
	[ "$BENCH_QUICK" = 1 ] && q=--quick
	run_bounded 180 "$BIN/bench-kernels" --threads "$BENCH_THREADS" $q
else
	echo "SKIP: $BIN/bench-kernels not built"
fi

# ---------------------------------------------------------------------------
section "model: Qwen2-0.5B-shaped, random weights (dify-edge bench)"
# Owner: helper "model"; the section lives in tests/bench/model.sh. About 4
# minutes (plus writing the two models once into build/bench-models/).
run_bounded 1500 sh tests/bench/model.sh

# ---------------------------------------------------------------------------
section "server: /health req/s, time to first token, HNSW (tests/bench/server.sh)"
# Owner: helper "server". wrk at 64 connections, TTFT p50/p99 at 1/4/16
# concurrent streams on the demo-size model, HNSW recall@10 and latency on
# 100k random 384-d vectors (BENCH_QUICK=1: 20k). About 3 minutes plus the
# HNSW build (several minutes on 2 cores).
run_bounded 3600 bash tests/bench/server.sh

# ---------------------------------------------------------------------------
section "collectors: BPF cost per sched_switch, ping-pong throughput lost, edgectl CPU (tests/bench/collectors.sh)"
# Owner: helper "bpf". Root and kernel BTF; about 70 s (BENCH_QUICK=1: 40 s).
run_bounded 300 bash tests/bench/collectors.sh

# ---------------------------------------------------------------------------
section "controller: supervise's own cost, TTFT with a CPU hog (tests/bench/controller.sh)"
# Owner: helper "controller". The supervisor's CPU at 1 Hz with the core idle
# (60 s; BENCH_QUICK=1: 20 s), then TTFT p50/p99 of a steady request stream
# with no hog, with a hog in a neighbour cgroup, and with the hog under
# supervise's bandwidth policy. Root and cgroups needed (skips otherwise).
# About 4 minutes (BENCH_QUICK=1: about 2).
run_bounded 600 bash tests/bench/controller.sh

# ---------------------------------------------------------------------------
# (next sections: append below, one "section" block each)

exit $status

