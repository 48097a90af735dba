#!/bin/bash
# tests/bench/controller.sh: the controller's benchmarks (helper "controller").
#  1. the supervisor's own CPU cost at 1 Hz with the core idle;
#  2. time to first token of a steady request stream (one request every
#     100 ms, 300 per window, max_tokens 1, so the request time is the TTFT) with no hog, with
#     a CPU hog (one busy loop per CPU) in a neighbour cgroup left alone, and
#     with the same hog under supervise's bandwidth policy (two windows), the same with
#     [bandwidth] realtime = true (two windows: the workers SCHED_FIFO), then with no hog
#     again: the baseline before and after, since it moves from run to run by more than
#     the 1.2x the target allows. The policy's target is 1.1 x the no-hog p99 of the
#     core's own TTFT histogram (what the policy reads; the client's time adds the
#     connection), to 0.1 ms.
# Needs root and the cpu controller on cgroup v1 (or v2). Bounded: about
# 7 minutes (BENCH_QUICK=1: about 3). Prints Markdown tables.
# TRACE=DIR: also record sched_switch/sched_wakeup(_new)/sched_migrate_task in a private
# ftrace instance (clock mono) with a marker before and after each request (supervise's ticks
# show as its threads running and the core threads they wake), one file per
# window: DIR/trace.{nohog,untuned,sup1,sup2,nohog2} and .tids (the core's threads at the end of
# the window); read them with tests/bench/controller_sched.py.
set -u
: "${BUILD:?}"
BIN=$BUILD/bin
QUICK=${BENCH_QUICK:-0}
T=$(mktemp -d /tmp/ctl-bench.XXXXXX)
HOG=edgectl-bench-hog
CG=edgectl-bench/core
PORT=$((30000 + $$ % 20000))
SUP=""; HOGS=()
TR=/sys/kernel/tracing/instances/ctl-bench.$$
CPUDIR=/sys/fs/cgroup/cpu
[ -d $CPUDIR ] || CPUDIR=/sys/fs/cgroup

cleanup() {
	[ -n "$SUP" ] && kill -TERM "$SUP" 2>/dev/null && wait "$SUP" 2>/dev/null
	for p in "${HOGS[@]}"; do kill -9 "$p" 2>/dev/null; done
	sleep 0.2
	[ -d $CPUDIR/$HOG ] && rmdir $CPUDIR/$HOG 2>/dev/null
	EDGECTL_STATE=$T/state.json "$BIN/edgectl" revert --quiet > /dev/null 2>&1
	[ -d "$TR" ] && { echo 0 > "$TR/tracing_on"; rmdir "$TR"; }
	rm -rf "$T"
}
trap cleanup EXIT

if [ "$(id -u)" -ne 0 ]; then echo "SKIP: controller bench needs root (cgroups)"; exit 0; fi
if [ ! -x "$BIN/edgectl" ] || [ ! -x "$BIN/dify-edge" ]; then echo "SKIP: edgectl or dify-edge not built"; exit 0; fi
"$BIN/dify-edge" gguf write-random --arch llama --type q8_0 \
	--dims layers=8,embd=512,ff=1536,heads=8,kv_heads=4,ctx=1024,vocab=4096 -o "$T/m.gguf" > /dev/null || { echo "SKIP: no model"; exit 0; }
export EDGECTL_STATE=$T/state.json
if [ -n "${TRACE:-}" ]; then
	mkdir -p "$TRACE" "$TR" || exit 1
	echo mono > "$TR/trace_clock"; echo 65536 > "$TR/buffer_size_kb"
	for e in sched_switch sched_wakeup sched_wakeup_new sched_migrate_task; do echo 1 > "$TR/events/sched/$e/enable"; done
fi

ticks() { awk '{print $14 + $15}' /proc/$1/stat; }
hz=$(getconf CLK_TCK)

start_sup() { # CONFIG
	for _try in 1 2 3; do
		"$BIN/edgectl" supervise --config "$1" -- "$BIN/dify-edge" serve --model-path "$T/m.gguf" \
			--host 127.0.0.1:$PORT -t "$(nproc)" -P 1 -q > "$T/sup.out" 2>&1 &
		SUP=$!
		for _ in $(seq 200); do
			curl -s -m 0.3 http://127.0.0.1:$PORT/health | grep -q '"ok"' && return 0
			# the port, picked from the pid, can be an ephemeral port in use: another one
			grep -q 'Address already in use' "$T/sup.out" && break
			sleep 0.05
		done
		grep -q 'Address already in use' "$T/sup.out" || break
		stop_sup; PORT=$((PORT + 1 + RANDOM % 1000))
	done
	echo "bench: supervise did not start: $(head -3 "$T/sup.out")"; return 1
}
stop_sup() { kill -TERM "$SUP"; wait "$SUP" 2>/dev/null; SUP=""; }

write_cfg() { # FILE BANDWIDTH(true/false) TARGET_MS [REALTIME(true/false)]
	cat > "$1" <<INI
[general]
cgroup = $CG
socket = $T/sup.sock
audit_log = $T/audit.jsonl
sustain_ticks = 2
[threads]
enabled = false
[bandwidth]
enabled = $2
ttft_p99_target = ${3}ms
neighbours = /$HOG
cooldown = 2s
step = 50
neighbour_min = 5
realtime = ${4:-false}
INI
}

PROMPT=$(printf 'the quick brown fox jumps over the lazy dog %.0s' $(seq 12))
# measure N [TAG]: N requests, one every 100 ms; prints p50 and p99 of the request time in ms
# (with TRACE and a TAG: the window's trace into $TRACE/trace.TAG)
measure() {
	local tag=${2:-}
	: > "$T/lat"
	[ -n "${TRACE:-}" ] && [ -n "$tag" ] && { echo > "$TR/trace"; echo 1 > "$TR/tracing_on"; }
	for i in $(seq "$1"); do
		[ -n "${TRACE:-}" ] && [ -n "$tag" ] && echo "REQ $tag $i B" > "$TR/trace_marker"
		curl -s -o /dev/null -w '%{time_total}\n' -m 30 http://127.0.0.1:$PORT/v1/completions \
			-d "{\"prompt\":\"$PROMPT $i\",\"max_tokens\":1}" >> "$T/lat"
		[ -n "${TRACE:-}" ] && [ -n "$tag" ] && echo "REQ $tag $i E $(tail -1 "$T/lat")" > "$TR/trace_marker"
		sleep 0.1
	done
	if [ -n "${TRACE:-}" ] && [ -n "$tag" ]; then
		local core
		echo 0 > "$TR/tracing_on"; cp "$TR/trace" "$TRACE/trace.$tag"
		core=$(pgrep -P "$SUP" -x dify-edge | head -1)
		for t in $(ls /proc/$core/task); do echo "$t $(cat /proc/$core/task/$t/comm)"; done > "$TRACE/trace.$tag.tids"
		echo "$SUP edgectl" > "$TRACE/trace.$tag.sup"
	fi
	[ -n "$tag" ] && cp "$T/lat" "$T/lat.$tag"
	pct "$T/lat"
}
# pct FILE...: p50 and p99 (ms) of the request times (s) in FILEs; p99 of 300 is the 3rd slowest
pct() {
	cat "$@" | sort -n | awk '{ v[NR] = $1 * 1000 } END {
		p50 = v[int(NR * 0.50 + 0.999)]; p99 = v[int(NR * 0.99 + 0.999)]; printf "%.1f %.1f\n", p50, p99 }'
}
# the core's TTFT histogram (cumulative "bound count" lines) from its /metrics
srv_hist() { curl -s -m 2 http://127.0.0.1:$PORT/metrics | sed -n 's/^dify_edge_time_to_first_token_seconds_bucket{le="\([^"]*\)"} \([0-9]*\)$/\1 \2/p'; }
# srv_p99 BEFORE AFTER: p99 (ms) of the requests between two srv_hist, linear in the bucket
# as the policy reads it
srv_p99() {
	paste -d' ' "$1" "$2" | awk '{ b[NR] = $1; d[NR] = $4 - $2 } END {
		r = 0.99 * d[NR]; lo = 0; below = 0
		for (i = 1; i <= NR; i++) {
			if (d[i] >= r && d[i] > 0) {
				if (b[i] == "+Inf") { printf "%.1f\n", lo * 1000; exit }
				printf "%.1f\n", (lo + (b[i] - lo) * (r - below) / (d[i] - below)) * 1000; exit
			}
			lo = b[i]; below = d[i]
		}
		print "" }'
}

start_hog() {
	for _ in $(seq "$(nproc)"); do
		bash -c 'while :; do :; done' > /dev/null 2>&1 &
		HOGS+=($!); disown $!; echo $! > $CPUDIR/$HOG/cgroup.procs
	done
}
stop_hog() { for p in "${HOGS[@]}"; do kill -9 "$p" 2>/dev/null; done; HOGS=(); sleep 0.3; rmdir $CPUDIR/$HOG 2>/dev/null; }

mkdir -p $CPUDIR/$HOG # the neighbour cgroup, empty until the hog starts

# ---- 1. the supervisor's cost at 1 Hz ----
secs=60; [ "$QUICK" = 1 ] && secs=20
write_cfg "$T/a.ini" false 500
start_sup "$T/a.ini" || exit 1
sleep 2
t0=$(ticks "$SUP"); sleep "$secs"; t1=$(ticks "$SUP")
cost=$(awk -v a="$t0" -v b="$t1" -v s="$secs" -v hz="$hz" 'BEGIN { printf "%.2f", (b - a) / hz / s * 100 }')
echo "| measurement | value |"
echo "|---|---|"
echo "| edgectl supervise CPU at 1 Hz, core idle, ${secs} s | ${cost} % of one core (target < 1 %) |"
echo "| ticks | $(curl -s --unix-socket "$T/sup.sock" http://x/metrics | sed -n 's/^edgectl_ticks_total //p') |"
echo "| last tick's work | $(curl -s --unix-socket "$T/sup.sock" http://x/metrics | sed -n 's/^edgectl_tick_work_seconds //p') s |"
echo

# ---- 2. TTFT: no hog, hog untuned, hog under supervise ----
n=300; [ "$QUICK" = 1 ] && n=60 # p99 of 300: the 3rd slowest, steadier than the 2nd of 100
measure 10 > /dev/null # warm up
srv_hist > "$T/h0"
read -r a50 a99 < <(measure "$n" nohog)
srv_hist > "$T/h1"
srv99=$(srv_p99 "$T/h0" "$T/h1") # empty: no histogram (the target then comes from the client's p99)
start_hog; sleep 1
read -r b50 b99 < <(measure "$n" untuned)
stop_sup
target=$(awk -v p="$srv99" -v c="$a99" 'BEGIN { if (p == "" || p <= 0) p = c; t = p * 1.1; printf "%.1f", (t < 1 ? 1 : t) }')
write_cfg "$T/c.ini" true "$target"
start_sup "$T/c.ini" || exit 1
measure 80 > /dev/null # the policy acts on what this traffic shows
read -r c50 c99 < <(measure "$n" sup1)
# the same again, now that the policy has had the first window to converge
read -r d50 d99 < <(measure "$n" sup2)
capped=$(grep -c '"action":"set_cpu_max"' "$T/audit.jsonl")
q=$(cat $CPUDIR/$HOG/cpu.cfs_quota_us 2>/dev/null || cat $CPUDIR/$HOG/cpu.max)
idle_during=$(cat $CPUDIR/$HOG/cpu.idle 2>/dev/null || echo n/a)
stop_sup
# supervise's exit reverts what it changed
q_after=$(cat $CPUDIR/$HOG/cpu.cfs_quota_us 2>/dev/null || cat $CPUDIR/$HOG/cpu.max)
idle_after=$(cat $CPUDIR/$HOG/cpu.idle 2>/dev/null || echo n/a)
cp "$T/audit.jsonl" "$T/audit.keep" 2>/dev/null
# the same hog under supervise with [bandwidth] realtime = true: the workers SCHED_FIFO first
rm -f "$T/audit.jsonl"
write_cfg "$T/r.ini" true "$target" true
start_sup "$T/r.ini" || exit 1
measure 80 > /dev/null
read -r f50 f99 < <(measure "$n" rt1)
read -r g50 g99 < <(measure "$n" rt2)
rt_dec=$(grep '"action":"set_realtime"' "$T/audit.jsonl" | head -1 | sed -n 's/.*"applied":\([a-z]*\).*/\1/p')
rt_cls=$(core=$(pgrep -P "$SUP" -x dify-edge | head -1); for t in $(ls /proc/$core/task 2>/dev/null); do chrt -p "$t" | sed -n 's/.*policy: SCHED_//p'; done | sort | uniq -c | tr -s ' \n' ' ')
q_rt=$(cat $CPUDIR/$HOG/cpu.cfs_quota_us 2>/dev/null || cat $CPUDIR/$HOG/cpu.max)
idle_rt=$(cat $CPUDIR/$HOG/cpu.idle 2>/dev/null || echo n/a)
capped_rt=$(grep -c '"action":"set_cpu_max"' "$T/audit.jsonl")
stop_sup
mv "$T/audit.jsonl" "$T/audit.rt"
mv "$T/audit.keep" "$T/audit.jsonl" 2>/dev/null
stop_hog
# the baseline again, as it was measured before: supervise without the bandwidth policy
mkdir -p $CPUDIR/$HOG
start_sup "$T/a.ini" || exit 1
measure 10 > /dev/null
read -r e50 e99 < <(measure "$n" nohog2)
stop_sup
read -r _ p99a < <(pct "$T/lat.nohog" "$T/lat.nohog2")
read -r _ p99s < <(pct "$T/lat.sup1" "$T/lat.sup2")
read -r _ p99r < <(pct "$T/lat.rt1" "$T/lat.rt2")
echo "| case ($n requests, one per 100 ms, max_tokens 1) | TTFT p50 ms | TTFT p99 ms |"
echo "|---|---|---|"
echo "| no hog (core's own histogram: p99 $srv99 ms) | $a50 | $a99 |"
echo "| hog in a neighbour cgroup, untuned | $b50 | $b99 |"
echo "| hog under supervise, first $n requests (target ${target} ms) | $c50 | $c99 |"
echo "| hog under supervise, next $n requests ($capped quota decisions in all, hog quota at the end: $q) | $d50 | $d99 |"
echo "| hog under supervise, realtime = true, first $n requests | $f50 | $f99 |"
echo "| hog under supervise, realtime = true, next $n requests ($capped_rt quota decisions, hog quota at the end: $q_rt, cpu.idle $idle_rt) | $g50 | $g99 |"
echo "| no hog again, after | $e50 | $e99 |"
echo
echo "realtime: set_realtime applied: ${rt_dec:-no decision}; the core's threads by class at the end: $rt_cls"
echo
echo "hog cgroup: quota $q and cpu.idle $idle_during under supervise; after supervise exited (revert): quota $q_after, cpu.idle $idle_after"
awk -v c="$c99" -v d="$d99" -v a="$a99" -v e="$e99" -v pa="$p99a" -v ps="$p99s" -v n="$n" 'BEGIN {
	printf "\np99 under supervise / p99 without hog before = %.2f over the first window, %.2f over the next (target <= 1.2)\n", c / a, d / a
	printf "the same against the no-hog p99 after: %.2f, %.2f\n", c / e, d / e
	printf "pooled (%d requests each: both no-hog windows, both supervised windows): p99 %.1f vs %.1f ms = %.2f\n", 2 * n, ps, pa, ps / pa }'
awk -v f="$f99" -v g="$g99" -v a="$a99" -v pa="$p99a" -v pr="$p99r" -v n="$n" 'BEGIN {
	printf "realtime = true: p99 / p99 without hog before = %.2f, %.2f; pooled: p99 %.1f vs %.1f ms = %.2f (target <= 1.2)\n", f / a, g / a, pr, pa, pr / pa }'
echo
echo "bandwidth decisions of the supervised run (audit log):"
grep '"policy":"bandwidth"' "$T/audit.jsonl" | sed -n 's/.*"action":"\([a-z_]*\)","target":"\([^"]*\)","from":\([-0-9]*\),"to":\([-0-9]*\).*"ts":"\([^"]*\)".*/  \5 \1 \2 \3 -> \4/p'
echo "bandwidth decisions of the realtime = true run (audit log):"
grep '"policy":"bandwidth"' "$T/audit.rt" | sed -n 's/.*"action":"\([a-z_]*\)","target":"\([^"]*\)","from":\([-0-9]*\),"to":\([-0-9]*\).*"ts":"\([^"]*\)".*/  \5 \1 \2 \3 -> \4/p'
