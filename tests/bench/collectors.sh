#!/bin/bash
# tests/bench/collectors.sh: overhead of the profile (section "collectors" of
# make bench; owner: helper "bpf"). Needs root and kernel BTF. ~70 s.
#   1. cost per sched_switch event of bpf/schedtrace, from the kernel's BPF
#      run-time statistics (kernel.bpf_stats_enabled=1, run_time_ns/run_cnt),
#      during a pipe ping-pong storm: filter "pid" (the storm is not the
#      target: the common case) and "system" (every task traced), each with
#      run-queue waits from the kernel's sched_info (the default) and from the
#      wakeup programs (the fallback), with all programs' time per switch,
#      and system-wide with thread records in the per-CPU LRU hash (what
#      task storage replaced under tp_btf);
#   2. ping-pong round trips/s and CPU time per round trip without a
#      profile, with only an empty program on sched_switch (the floor: the
#      kernel's dispatch of any BPF program there), with `edgectl profile --pid P --no-events` (P a sleeping
#      process: the storm untraced, scheduler tracing only), with `--pid P`
#      (plus the event programs: affinity from the switch watch where fexit
#      is refused), with `--pid P --affinity-syscalls` (a syscall hook
#      instead) and with a system-wide profile, without and with events (the
#      storm traced), 1 Hz, rounds interleaved, medians reported;
#      plus bpf/schedtrace alone, system-wide, with thread records in slots
#      (the default) and in task storage alone (before), side by side; and
#      the same kernel-side cases in short paired rounds (bench-collectors
#      cycle: each loss against its own round's no-program run);
#   3. CPU time used by `edgectl profile` at 1 Hz: start-up, then steady
#      state over 10 s (its /proc/PID/schedstat run time).
set -u
: "${BUILD:?}"
BIN=$BUILD/bin
QUICK=${BENCH_QUICK:-0}
S=3; R=5
[ "$QUICK" = 1 ] && { S=2; R=2; }
if [ "$(id -u)" -ne 0 ]; then echo "SKIP: collectors: not root"; exit 0; fi
if [ ! -r /sys/kernel/btf/vmlinux ]; then echo "SKIP: collectors: no kernel BTF"; exit 0; fi
for b in bench-collectors edgectl; do
	[ -x "$BIN/$b" ] || { echo "SKIP: collectors: $BIN/$b not built"; exit 0; }
done
TMP=$(mktemp -d /tmp/bench-coll.XXXXXX)
SLEEPER=""
cleanup() { [ -n "$SLEEPER" ] && kill "$SLEEPER" 2>/dev/null; rm -rf "$TMP"; }
trap cleanup EXIT
median() { sort -n | awk '{ v[NR]=$1 } END { if (NR%2) print v[(NR+1)/2]; else print (v[NR/2]+v[NR/2+1])/2 }'; }
val() { sed -n "s/^$1 //p"; }

echo "| sched_switch program | filter | run-queue waits from | switch program ns per event (run_time_ns/run_cnt) | all programs' ns per switch | switch events |"
echo "|---|---|---|---|---|---|"
for run in "pid sched_info" "pid wakeup" "system sched_info" "system sched_info noslots" "system wakeup" "system sched_info lru"; do
	set -- $run
	out=$("$BIN/bench-collectors" bpfcost "$S" "$@") || { echo "bench-collectors bpfcost failed"; exit 1; }
	echo "| $(echo "$out" | val mode), threads in $(echo "$out" | val thread_store) | $1 | $(echo "$out" | val rq_source) | $(echo "$out" | val ns_per_switch) | $(echo "$out" | val all_ns_per_switch) | $(echo "$out" | val switch_events) |"
done
out=$("$BIN/bench-collectors" evcost "$S") || { echo "bench-collectors evcost failed"; exit 1; }
mode=$(echo "$out" | val mode)
case $mode in
*"raw syscalls") what="sys_enter+sys_exit programs, every syscall" ;;
*) what="affinity programs, sched_setaffinity only" ;;
esac
echo "| evtrace ($mode) | $what | $(echo "$out" | val ns_per_syscall_prog) | $(echo "$out" | val syscall_prog_runs) |"
echo

# the kernel side alone in short paired rounds: each loss against its own
# round's no-program run, median over rounds (the drift of this guest cancels)
CY=12; [ "$QUICK" = 1 ] && CY=4
out=$("$BIN/bench-collectors" cycle 1 "$CY") || { echo "bench-collectors cycle failed"; exit 1; }
echo "| ping-pong on CPU 0, $CY paired rounds of 1 s per case (order rotated) | CPU ns per round trip (median) | loss against the same round's no-program run (median) |"
echo "|---|---|---|"
echo "| no program | $(echo "$out" | val none_cpu_ns_per_roundtrip) | - |"
echo "| floor: an empty raw_tp program on sched_switch | $(echo "$out" | val floor_cpu_ns_per_roundtrip) | $(echo "$out" | val floor_loss_pct) % |"
echo "| bpf/schedtrace, pid filter (a sleeping process: the storm untraced) | $(echo "$out" | val pid_cpu_ns_per_roundtrip) | $(echo "$out" | val pid_loss_pct) % |"
echo "| bpf/schedtrace, system-wide, thread records in slots (default) | $(echo "$out" | val slots_cpu_ns_per_roundtrip) | $(echo "$out" | val slots_loss_pct) % |"
echo "| bpf/schedtrace, system-wide, thread records in task storage alone | $(echo "$out" | val task_storage_cpu_ns_per_roundtrip) | $(echo "$out" | val task_storage_loss_pct) % |"
echo

sh -c 'echo $$ > "$0"; exec sleep 600' "$TMP/sleeper.pid" &
sleep 0.2
SLEEPER=$(cat "$TMP/sleeper.pid")
: > "$TMP/kslots"; : > "$TMP/kts"; : > "$TMP/floor"; : > "$TMP/base"; : > "$TMP/pid"; : > "$TMP/sys"; : > "$TMP/noev"; : > "$TMP/sysnoev"; : > "$TMP/pidsc"
pp() { "$BIN/bench-collectors" pingpong "$S" > "$TMP/pp"; echo "$(val roundtrips_per_s < "$TMP/pp") $(val cpu_ns_per_roundtrip < "$TMP/pp")" >> "$1"; }
for _ in $(seq "$R"); do
	pp "$TMP/base"
	"$BIN/bench-collectors" floor "$S" > "$TMP/pp" && echo "$(val roundtrips_per_s < "$TMP/pp") $(val cpu_ns_per_roundtrip < "$TMP/pp")" >> "$TMP/floor"
	"$BIN/bench-collectors" storm "$S" system > "$TMP/pp" && echo "$(val roundtrips_per_s < "$TMP/pp") $(val cpu_ns_per_roundtrip < "$TMP/pp")" >> "$TMP/kslots"
	"$BIN/bench-collectors" storm "$S" system noslots > "$TMP/pp" && echo "$(val roundtrips_per_s < "$TMP/pp") $(val cpu_ns_per_roundtrip < "$TMP/pp")" >> "$TMP/kts"
	"$BIN/edgectl" profile --no-events --pid "$SLEEPER" --interval 1s --json > /dev/null 2>&1 &
	P=$!; sleep 1.5
	pp "$TMP/noev"
	kill -INT "$P"; wait "$P" 2>/dev/null
	"$BIN/edgectl" profile --affinity-syscalls --pid "$SLEEPER" --interval 1s --json > /dev/null 2>&1 &
	P=$!; sleep 1.5
	pp "$TMP/pidsc"
	kill -INT "$P"; wait "$P" 2>/dev/null
	"$BIN/edgectl" profile --pid "$SLEEPER" --interval 1s --json > /dev/null 2>&1 &
	P=$!; sleep 1.5
	pp "$TMP/pid"
	kill -INT "$P"; wait "$P" 2>/dev/null
	"$BIN/edgectl" profile --no-events --interval 1s --json > /dev/null 2>&1 &
	P=$!; sleep 1.5
	pp "$TMP/sysnoev"
	kill -INT "$P"; wait "$P" 2>/dev/null
	"$BIN/edgectl" profile --interval 1s --json > /dev/null 2>&1 &
	P=$!; sleep 1.5
	pp "$TMP/sys"
	kill -INT "$P"; wait "$P" 2>/dev/null
done
col() { awk -v c="$1" '{ print $c }' "$2" | median; }
bt=$(col 1 "$TMP/base"); bc=$(col 2 "$TMP/base")
echo "| pipe ping-pong on CPU 0 ($R rounds x ${S} s, medians) | round trips/s | CPU ns per round trip | throughput lost (from CPU per round trip) |"
echo "|---|---|---|---|"
echo "| no profile | $bt | $bc | - |"
for m in floor kts kslots noev pid pidsc sysnoev sys; do
	t=$(col 1 "$TMP/$m"); c=$(col 2 "$TMP/$m")
	label="edgectl profile --pid (storm untraced)"
	[ "$m" = floor ] && label="floor: an empty program (r0 = 0; exit) on sched_switch, no profile"
	[ "$m" = kts ] && label="bpf/schedtrace alone, system-wide, thread records in task storage (before the slots)"
	[ "$m" = kslots ] && label="bpf/schedtrace alone, system-wide, thread records in slots (default)"
	[ "$m" = noev ] && label="edgectl profile --pid --no-events (storm untraced, bpf-sched only)"
	[ "$m" = pidsc ] && label="edgectl profile --pid --affinity-syscalls (storm untraced, sched_setaffinity by syscall hook where fexit is refused)"
	[ "$m" = sysnoev ] && label="edgectl profile --no-events, system-wide (storm traced, bpf-sched only)"
	[ "$m" = sys ] && label="edgectl profile, system-wide (storm traced)"
	awk -v l="$label" -v t="$t" -v c="$c" -v bc="$bc" 'BEGIN { printf "| %s | %s | %s | %.1f %% |\n", l, t, c, 100*(c-bc)/c }'
done
echo "(round trips/s per run: base $(cut -d' ' -f1 "$TMP/base" | tr '\n' ' ')/ floor $(cut -d' ' -f1 "$TMP/floor" | tr '\n' ' ')/ kernel side, task storage $(cut -d' ' -f1 "$TMP/kts" | tr '\n' ' ')/ kernel side, slots $(cut -d' ' -f1 "$TMP/kslots" | tr '\n' ' ')/ no-events $(cut -d' ' -f1 "$TMP/noev" | tr '\n' ' ')/ pid $(cut -d' ' -f1 "$TMP/pid" | tr '\n' ' ')/ affinity-syscalls $(cut -d' ' -f1 "$TMP/pidsc" | tr '\n' ' ')/ system no-events $(cut -d' ' -f1 "$TMP/sysnoev" | tr '\n' ' ')/ system $(cut -d' ' -f1 "$TMP/sys" | tr '\n' ' '))"
echo "(CPU ns per round trip per run: base $(cut -d' ' -f2 "$TMP/base" | tr '\n' ' ')/ floor $(cut -d' ' -f2 "$TMP/floor" | tr '\n' ' ')/ kernel side, task storage $(cut -d' ' -f2 "$TMP/kts" | tr '\n' ' ')/ kernel side, slots $(cut -d' ' -f2 "$TMP/kslots" | tr '\n' ' ')/ no-events $(cut -d' ' -f2 "$TMP/noev" | tr '\n' ' ')/ pid $(cut -d' ' -f2 "$TMP/pid" | tr '\n' ' ')/ affinity-syscalls $(cut -d' ' -f2 "$TMP/pidsc" | tr '\n' ' ')/ system no-events $(cut -d' ' -f2 "$TMP/sysnoev" | tr '\n' ' ')/ system $(cut -d' ' -f2 "$TMP/sys" | tr '\n' ' '))"
echo

echo "| edgectl profile at 1 Hz | start-up CPU ms | steady CPU ms per 10 s | steady % of one core |"
echo "|---|---|---|---|"
for mode in pid system; do
	args="--interval 1s --json"
	[ "$mode" = pid ] && args="$args --pid $SLEEPER"
	"$BIN/edgectl" profile $args > /dev/null 2>&1 &
	P=$!
	sleep 2.5
	t1=$(cut -d' ' -f1 /proc/$P/schedstat)
	sleep 10
	t2=$(cut -d' ' -f1 /proc/$P/schedstat)
	kill -INT "$P"; wait "$P" 2>/dev/null
	awk -v m="$mode" -v a="$t1" -v b="$t2" 'BEGIN { printf "| %s | %.1f (load, verify, attach, first ticks) | %.1f | %.3f %% |\n", m, a/1e6, (b-a)/1e6, 100*(b-a)/10e9 }'
done
