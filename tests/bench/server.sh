#!/bin/bash
# tests/bench/server.sh: the `make bench` section of dify-edge serve (helper
# "server"), called by tests/bench/run.sh. Prints Markdown tables:
#   1. GET /health requests/s with wrk, 64 connections, 2 threads, 10 s;
#   2. time to first token seen by the client (bench-ttft: from connect to
#      the first "data: {" event of a streamed /v1/completions, 32 tokens)
#      p50/p99 at 1, 4 and 16 concurrent streams on the demo-size model
#      (llama q8_0, 4 layers, width 128, vocab 2048), server with -P 4
#      --queue 32 (16 streams: 4 decode, 12 wait) and with -P 16;
#   3. HNSW (bench-hnsw): 100k random 384-d vectors (Gaussian, normalized:
#      random directions), build time (wall and CPU), recall@10
#      against brute force and query latency per ef_search; then 100k 384-d
#      vectors of a 16-dimensional subspace (BENCH_QUICK=1: 20k vectors).
# Env: BUILD, BENCH_QUICK, BENCH_THREADS. About 3 minutes plus the HNSW build
# (several minutes for 100k vectors on 2 cores).
set -u
: "${BUILD:?BUILD must name the build directory}"
BIN=$BUILD/bin
QUICK=${BENCH_QUICK:-0}
THREADS=${BENCH_THREADS:-2}
DIR=$BUILD/bench-server
mkdir -p "$DIR"
M=$DIR/demo-llama-q8_0.gguf
SPID=
trap 'if [ -n "$SPID" ]; then kill $SPID 2>/dev/null; fi' EXIT

if [ ! -x "$BIN/dify-edge" ]; then
	echo "SKIP: $BIN/dify-edge not built"
	exit 0
fi
if [ ! -f "$M" ]; then
	"$BIN/dify-edge" gguf write-random --arch llama --type q8_0 \
		--dims layers=4,embd=128,ff=384,heads=4,kv_heads=2,ctx=512,vocab=2048 --seed 42 -o "$M" >/dev/null || exit 1
fi

start() {
	: >"$DIR/serve.log"
	"$BIN/dify-edge" serve -m "$M" --host 127.0.0.1:0 -t "$THREADS" "$@" >"$DIR/serve.log" 2>&1 &
	SPID=$!
	PORT=
	for _ in $(seq 1 200); do
		PORT=$(sed -n 's/.*listening on 127\.0\.0\.1:\([0-9][0-9]*\).*/\1/p' "$DIR/serve.log" | head -1)
		[ -n "$PORT" ] && curl -sf "http://127.0.0.1:$PORT/health" >/dev/null && return 0
		sleep 0.05
	done
	echo "bench server: the server did not start: $(tail -3 "$DIR/serve.log")"
	return 1
}
stop() {
	kill -TERM $SPID 2>/dev/null
	wait $SPID 2>/dev/null
	SPID=
}

echo "model: $M (llama q8_0, 4 layers, width 128, vocab 2048, random weights); compute threads $THREADS"
echo

# 1. /health with wrk
if command -v wrk >/dev/null; then
	start -P 4 || exit 1
	D=10
	[ "$QUICK" = 1 ] && D=4
	wrk -t2 -c64 -d${D}s --latency "http://127.0.0.1:$PORT/health" >"$DIR/wrk.txt" 2>&1
	RPS=$(awk '/^Requests\/sec/ { print $2 }' "$DIR/wrk.txt")
	P50=$(awk '$1 == "50%" { print $2 }' "$DIR/wrk.txt")
	P99=$(awk '$1 == "99%" { print $2 }' "$DIR/wrk.txt")
	ERR=$(grep -E 'Non-2xx|Socket errors' "$DIR/wrk.txt" | tr '\n' ' ')
	echo "| GET /health, wrk -t2 -c64 -d${D}s | requests/s | p50 | p99 |"
	echo "|---|---:|---:|---:|"
	echo "| keep-alive, thread per connection | $RPS | $P50 | $P99 |"
	[ -n "$ERR" ] && echo "wrk: $ERR"
	echo
	stop
else
	echo "SKIP: wrk not installed"
fi

# 2. TTFT at 1, 4, 16 concurrent streams (bench-ttft: first "data: {" event)
if [ -x "$BIN/bench-ttft" ]; then
	echo "| server | concurrent streams | requests | TTFT p50 ms | TTFT p99 ms | request p50 ms | request p99 ms | failed |"
	echo "|---|---:|---:|---:|---:|---:|---:|---:|"
	for P in 4 16; do
		start -P $P --queue 32 || exit 1
		for C in 1 4 16; do
			[ "$P" = 16 ] && [ "$C" != 16 ] && continue
			R=$((64 / C))
			[ $R -lt 4 ] && R=4
			[ "$QUICK" = 1 ] && R=$(((R + 1) / 2))
			printf '| -P %s --queue 32 ' "$P"
			"$BIN/bench-ttft" --port "$PORT" --concurrency $C --rounds $R --max-tokens 32
		done
		stop
	done
else
	echo "SKIP: $BIN/bench-ttft not built"
fi
echo

# 3. HNSW
if [ -x "$BIN/bench-hnsw" ]; then
	N=100000
	[ "$QUICK" = 1 ] && N=20000
	# the required case: random vectors -- Gaussian coordinates normalized,
	# i.e. random directions (no structure: the worst case for a graph)
	timeout -k 5 2400 "$BIN/bench-hnsw" --n $N --dim 384 --queries 200 --dist gauss --ef 64,128,256,512,1024,2048,4096
	echo
	# the same size with structure (a 16-dimensional subspace + noise), as
	# real embeddings have: what the KB sees in practice
	timeout -k 5 1200 "$BIN/bench-hnsw" --n $N --dim 384 --queries 200 --intrinsic 16 --ef 16,32,64
else
	echo "SKIP: $BIN/bench-hnsw not built"
fi
