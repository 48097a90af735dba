#!/bin/sh
# tests/bench/model.sh: the model section of `make bench` (called by
# tests/bench/run.sh; owner: the model runtime).
#
# Writes Qwen2-0.5B-shaped models (24 layers, width 896, 14 heads / 2 KV
# heads, FFN 4864, vocab 151936, tied embeddings: Qwen2-0.5B's real shape)
# with random weights in Q8_0 and Q4_0 into build/bench-models/ once (cached:
# written only when absent), then runs `dify-edge bench` at 1..BENCH_THREADS
# threads: pp128 / tg64 tokens/s (mean ± stddev of 5 repetitions), weight
# bytes streamed per second during generation, load time (warm page cache)
# and resident memory. About 4 minutes once the models exist.
#
# Env: BUILD (required), BENCH_THREADS (default 2), BENCH_QUICK=1 (shorter).
set -u
: "${BUILD:?BUILD must name the build directory}"
BIN=$BUILD/bin
BENCH_THREADS=${BENCH_THREADS:-2}
BENCH_QUICK=${BENCH_QUICK:-0}
models_dir=build/bench-models
status=0
mkdir -p "$models_dir"
threads=$(seq -s, 1 "$BENCH_THREADS")
if [ "$BENCH_QUICK" = 1 ]; then args="-p 64 -n 16 -r 2"; else args="-p 128 -n 64 -r 5"; fi
for type in q8_0 q4_0; do
	f=$models_dir/qwen2-0.5b-$type.gguf
	if [ ! -s "$f" ]; then
		echo "writing $f (once; cached for later runs)"
		if ! timeout -k 5 300 "$BIN/dify-edge" gguf write-random --arch qwen2 --type $type \
			--dims qwen2-0.5b --seed 1 -o "$f.tmp"; then
			rm -f "$f.tmp"; status=1; continue
		fi
		mv "$f.tmp" "$f"
	fi
	cat "$f" >/dev/null # into the page cache: the load times below are warm
	echo "## $f ($(du -m "$f" | cut -f1) MiB)"
	echo
	echo "\$ dify-edge bench -m $f -t $threads $args"
	echo
	# shellcheck disable=SC2086
	timeout -k 5 400 "$BIN/dify-edge" bench -m "$f" -t "$threads" $args || status=1
	echo
	echo "load only, 3 runs (dify-edge bench -m $f -t 1 -p 0 -n 0):"
	for i in 1 2 3; do
		timeout 60 "$BIN/dify-edge" bench -m "$f" -t 1 -p 0 -n 0 | sed -n 's/^load: /  /p'
	done
	echo
done
exit $status
