#!/bin/bash
# tests/bench/controller_sched.sh: where the core's TTFT tail goes with a CPU hog in a
# neighbour cgroup, without supervise in the way (issue 5 diagnosis, 2026-11-25).
#
# Usage: BUILD=build/<dir> bash tests/bench/controller_sched.sh N CASE...
#   CASE: none | IDLE:QUOTA_US:PERIOD_US   (the hog cgroup's cpu.idle and cfs quota/period;
#         quota -1: no limit), run in the order given, N requests each.
# One `dify-edge serve -t <nproc> -P 1` in /edgectl-bench/core (cpu hierarchy; the parent's
# cpu.shares 10240, as supervise's weight 1000 sets it), its two pool workers pinned to CPUs
# 1 and 0 the way supervise's affinity policy pins them (PIN=0: left unpinned). The hog: one
# busy loop per CPU in /edgectl-bench-hog, started at the first hog case and kept across
# hog cases, killed at a `none` case. Requests as in controller.sh: one every 100 ms,
# max_tokens 1, a ~110-token prompt; prints p50/p90/p99 (p99 = the 4th slowest of 300, as
# controller.sh computes it) and the three slowest.
# FIFO=1: the two workers SCHED_FIFO priority 1 (the cgroups given cpu.rt_runtime_us 200000
# of the root's 1 s period where the kernel has RT group scheduling), to take them out of the
# fair class the hog competes in (2026-12-04 diagnosis; nothing in the product does this).
# TRACE=DIR: also record sched_switch/sched_wakeup/sched_migrate_task in a private ftrace
# instance (clock mono) with a marker before and after each request, one file per case:
# DIR/trace.<case> and DIR/trace.<case>.tids (the core's threads); read them with
# tests/bench/controller_sched.py. LAT=DIR: each case's request times (s, one a line) into
# DIR/lat.<k>.<case> (k: the case's place in the list, from 1).
# Needs root, the cpu controller (v1) and tracefs for TRACE.
set -u
: "${BUILD:?}"
BIN=$BUILD/bin
N=${1:?usage: controller_sched.sh N CASE...}; shift
[ $# -gt 0 ] || { echo "controller_sched.sh: no case given" >&2; exit 2; }
if [ "$(id -u)" -ne 0 ]; then echo "SKIP: needs root (cgroups)"; exit 0; fi
CPU=/sys/fs/cgroup/cpu
[ -f $CPU/cpu.shares ] || { echo "SKIP: needs the cpu controller on cgroup v1 at $CPU"; exit 0; }
T=$(mktemp -d /tmp/ctl-sched.XXXXXX)
HOG=$CPU/edgectl-bench-hog; CG=$CPU/edgectl-bench
TR=/sys/kernel/tracing/instances/ctl-sched.$$
PORT=$((30000 + $$ % 20000)); HOGS=(); SRV=
cleanup() {
	for p in "${HOGS[@]}"; do kill -9 "$p" 2>/dev/null; done
	[ -n "$SRV" ] && kill "$SRV" 2>/dev/null && wait "$SRV" 2>/dev/null
	sleep 0.3
	[ -f $CG/core/cpu.rt_runtime_us ] && { echo 0 > $CG/core/cpu.rt_runtime_us; echo 0 > $CG/cpu.rt_runtime_us; } 2>/dev/null
	rmdir $HOG $CG/core $CG 2>/dev/null
	[ -d "$TR" ] && { echo 0 > "$TR/tracing_on"; rmdir "$TR"; }
	rm -rf "$T"
}
trap cleanup EXIT
mkdir -p $HOG $CG/core
"$BIN/dify-edge" gguf write-random --arch llama --type q8_0 \
	--dims layers=8,embd=512,ff=1536,heads=8,kv_heads=4,ctx=1024,vocab=4096 -o "$T/m.gguf" > /dev/null || exit 1
echo 10240 > $CG/cpu.shares
sh -c "echo \$\$ > $CG/core/cgroup.procs; exec $BIN/dify-edge serve --model-path $T/m.gguf --host 127.0.0.1:$PORT -t $(nproc) -P 1 -q" &
SRV=$!
for _ in $(seq 200); do curl -s -m 0.3 http://127.0.0.1:$PORT/health | grep -q '"ok"' && break; sleep 0.05; done
# the pool's workers: the first two threads named dify-edge after the main thread
w=($(for t in $(ls /proc/$SRV/task | sort -n); do [ "$(cat /proc/$SRV/task/$t/comm)" = dify-edge ] && [ "$t" != "$SRV" ] && echo "$t"; done))
if [ "${PIN:-1}" = 1 ] && [ "$(nproc)" -ge 2 ]; then taskset -pc 1 "${w[0]}" > /dev/null; taskset -pc 0 "${w[1]}" > /dev/null; fi
if [ "${FIFO:-0}" = 1 ]; then
	[ -f $CG/cpu.rt_runtime_us ] && { echo 200000 > $CG/cpu.rt_runtime_us; echo 200000 > $CG/core/cpu.rt_runtime_us; }
	chrt -f -p 1 "${w[0]}" && chrt -f -p 1 "${w[1]}" || exit 1
fi
if [ -n "${TRACE:-}" ]; then
	mkdir -p "$TRACE" "$TR" || exit 1
	echo mono > "$TR/trace_clock"; echo 65536 > "$TR/buffer_size_kb"
	for e in sched_switch sched_wakeup sched_wakeup_new sched_migrate_task; do echo 1 > "$TR/events/sched/$e/enable"; done
fi
PROMPT=$(printf 'the quick brown fox jumps over the lazy dog %.0s' $(seq 12))
measure() { # TAG N
	: > "$T/lat"
	[ -n "${TRACE:-}" ] && { echo > "$TR/trace"; echo 1 > "$TR/tracing_on"; }
	for i in $(seq "$2"); do
		[ -n "${TRACE:-}" ] && echo "REQ $1 $i B" > "$TR/trace_marker"
		curl -s -o /dev/null -w '%{time_total}\n' -m 30 http://127.0.0.1:$PORT/v1/completions \
			-d "{\"prompt\":\"$PROMPT $1 $i\",\"max_tokens\":1}" >> "$T/lat"
		[ -n "${TRACE:-}" ] && echo "REQ $1 $i E $(tail -1 "$T/lat")" > "$TR/trace_marker"
		sleep 0.1
	done
	if [ -n "${TRACE:-}" ]; then
		echo 0 > "$TR/tracing_on"; cp "$TR/trace" "$TRACE/trace.$1"
		for t in $(ls /proc/$SRV/task); do echo "$t $(cat /proc/$SRV/task/$t/comm)"; done > "$TRACE/trace.$1.tids"
	fi
	[ -n "${LAT:-}" ] && [ "$1" != warm ] && mkdir -p "$LAT" && cp "$T/lat" "$LAT/lat.$K.$1"
	sort -n "$T/lat" | awk -v c="$1" '{ v[NR] = $1 * 1000 } END {
		printf "| %s | %.1f | %.1f | %.1f | %.1f, %.1f, %.1f |\n", c, v[int(NR*.5+.999)], v[int(NR*.9+.999)],
		v[int(NR*.99+.999)], v[NR-2], v[NR-1], v[NR] }'
}
measure warm 10 > /dev/null
echo "| case (idle:quota:period) | p50 ms | p90 ms | p99 ms | 3rd, 2nd slowest, max |"
echo "|---|---|---|---|---|"
K=0
for c in "$@"; do
	K=$((K + 1))
	if [ "$c" = none ]; then
		for p in "${HOGS[@]}"; do kill -9 "$p"; done; HOGS=(); sleep 0.3
	else
		IFS=: read -r idle quota period <<< "$c"
		if [ ${#HOGS[@]} = 0 ]; then
			for _ in $(seq "$(nproc)"); do
				bash -c 'while :; do :; done' > /dev/null 2>&1 &
				HOGS+=($!); disown $!; echo $! > $HOG/cgroup.procs
			done
		fi
		echo "$idle" > $HOG/cpu.idle; echo -1 > $HOG/cpu.cfs_quota_us
		echo "$period" > $HOG/cpu.cfs_period_us; echo "$quota" > $HOG/cpu.cfs_quota_us
	fi
	sleep 1
	measure "$c" "$N"
done
