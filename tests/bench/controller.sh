#!/bin/bash
# tests/bench/controller.sh: the controller's benchmarks (helper "controller").
#  1. the supervisor's own CPU cost at 1 Hz with the core idle;
#  2. time to first token of a steady request stream (one request every
#     100 ms, 300 per window, max_tokens 1, so the request time is the TTFT) with no hog, with
#     a CPU hog (one busy loop per CPU) in a neighbour cgroup left alone, and
#     with the same hog under supervise's bandwidth policy.
# Needs root and the cpu controller on cgroup v1 (or v2). Bounded: about
# 5 minutes (BENCH_QUICK=1: about 2). Prints Markdown tables.
set -u
: "${BUILD:?}"
BIN=$BUILD/bin
QUICK=${BENCH_QUICK:-0}
T=$(mktemp -d /tmp/ctl-bench.XXXXXX)
HOG=edgectl-bench-hog
CG=edgectl-bench/core
PORT=$((30000 + $$ % 20000))
SUP=""; HOGS=()
CPUDIR=/sys/fs/cgroup/cpu
[ -d $CPUDIR ] || CPUDIR=/sys/fs/cgroup

cleanup() {
	[ -n "$SUP" ] && kill -TERM "$SUP" 2>/dev/null && wait "$SUP" 2>/dev/null
	for p in "${HOGS[@]}"; do kill -9 "$p" 2>/dev/null; done
	sleep 0.2
	[ -d $CPUDIR/$HOG ] && rmdir $CPUDIR/$HOG 2>/dev/null
	EDGECTL_STATE=$T/state.json "$BIN/edgectl" revert --quiet > /dev/null 2>&1
	rm -rf "$T"
}
trap cleanup EXIT

if [ "$(id -u)" -ne 0 ]; then echo "SKIP: controller bench needs root (cgroups)"; exit 0; fi
if [ ! -x "$BIN/edgectl" ] || [ ! -x "$BIN/dify-edge" ]; then echo "SKIP: edgectl or dify-edge not built"; exit 0; fi
"$BIN/dify-edge" gguf write-random --arch llama --type q8_0 \
	--dims layers=8,embd=512,ff=1536,heads=8,kv_heads=4,ctx=1024,vocab=4096 -o "$T/m.gguf" > /dev/null || { echo "SKIP: no model"; exit 0; }
export EDGECTL_STATE=$T/state.json

ticks() { awk '{print $14 + $15}' /proc/$1/stat; }
hz=$(getconf CLK_TCK)

start_sup() { # CONFIG
	"$BIN/edgectl" supervise --config "$1" -- "$BIN/dify-edge" serve --model-path "$T/m.gguf" \
		--host 127.0.0.1:$PORT -t "$(nproc)" -P 1 -q > "$T/sup.out" 2>&1 &
	SUP=$!
	for _ in $(seq 200); do curl -s -m 0.3 http://127.0.0.1:$PORT/health | grep -q '"ok"' && return 0; sleep 0.05; done
	echo "bench: supervise did not start: $(cat "$T/sup.out")"; return 1
}
stop_sup() { kill -TERM "$SUP"; wait "$SUP" 2>/dev/null; SUP=""; }

write_cfg() { # FILE BANDWIDTH(true/false) TARGET_MS
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
INI
}

PROMPT=$(printf 'the quick brown fox jumps over the lazy dog %.0s' $(seq 12))
# measure N: N requests, one every 200 ms; prints p50 and p99 of the request time in ms
measure() {
	: > "$T/lat"
	for i in $(seq "$1"); do
		curl -s -o /dev/null -w '%{time_total}\n' -m 30 http://127.0.0.1:$PORT/v1/completions \
			-d "{\"prompt\":\"$PROMPT $i\",\"max_tokens\":1}" >> "$T/lat"
		sleep 0.1
	done
	sort -n "$T/lat" | awk '{ v[NR] = $1 * 1000 } END {
		p50 = v[int(NR * 0.50 + 0.999)]; p99 = v[int(NR * 0.99 + 0.999)]; printf "%.1f %.1f\n", p50, p99 }'
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
read -r a50 a99 < <(measure "$n")
start_hog; sleep 1
read -r b50 b99 < <(measure "$n")
stop_sup
target=$(awk -v p="$a99" 'BEGIN { t = p * 1.1; printf "%d", (t < 2 ? 2 : t + 0.999) }')
write_cfg "$T/c.ini" true "$target"
start_sup "$T/c.ini" || exit 1
measure 80 > /dev/null # the policy acts on what this traffic shows
read -r c50 c99 < <(measure "$n")
# the same again, now that the policy has had the first window to converge
read -r d50 d99 < <(measure "$n")
capped=$(grep -c '"action":"set_cpu_max"' "$T/audit.jsonl")
q=$(cat $CPUDIR/$HOG/cpu.cfs_quota_us 2>/dev/null || cat $CPUDIR/$HOG/cpu.max)
idle_during=$(cat $CPUDIR/$HOG/cpu.idle 2>/dev/null || echo n/a)
stop_sup
# supervise's exit reverts what it changed
q_after=$(cat $CPUDIR/$HOG/cpu.cfs_quota_us 2>/dev/null || cat $CPUDIR/$HOG/cpu.max)
idle_after=$(cat $CPUDIR/$HOG/cpu.idle 2>/dev/null || echo n/a)
stop_hog
cp "$T/audit.jsonl" "$T/audit.keep" 2>/dev/null
echo "| case ($n requests, one per 100 ms, max_tokens 1) | TTFT p50 ms | TTFT p99 ms |"
echo "|---|---|---|"
echo "| no hog | $a50 | $a99 |"
echo "| hog in a neighbour cgroup, untuned | $b50 | $b99 |"
echo "| hog under supervise, first $n requests (target ${target} ms) | $c50 | $c99 |"
echo "| hog under supervise, next $n requests ($capped quota decisions in all, hog quota at the end: $q) | $d50 | $d99 |"
echo
echo "hog cgroup: quota $q and cpu.idle $idle_during under supervise; after supervise exited (revert): quota $q_after, cpu.idle $idle_after"
awk -v c="$c99" -v d="$d99" -v a="$a99" 'BEGIN { printf "\np99 under supervise / p99 without hog = %.2f over the first window, %.2f over the next (target <= 1.2)\n", c / a, d / a }'
echo
echo "bandwidth decisions of the supervised run (audit log):"
grep '"policy":"bandwidth"' "$T/audit.jsonl" | sed -n 's/.*"action":"\([a-z_]*\)","target":"\([^"]*\)","from":\([-0-9]*\),"to":\([-0-9]*\).*"ts":"\([^"]*\)".*/  \5 \1 \2 \3 -> \4/p'
