#!/bin/bash
# profile_live.sh: 'edgectl profile' against the running kernel (root, BTF).
#   - a thread pinned to CPU 1 spinning: CPU 1 >= 90 % busy for the target,
#     CPU 0 near idle for it, within 10 points of /proc/stat;
#   - a cgroup v2 target (filtered in BPF by the cgroup's id), in the cgroup2
#     mount (the empty 'unified' one on a hybrid host);
#   - the procfs fallback agrees with BPF within 10 points (the target's share
#     per CPU, the spinner's CPU's busy time);
#   - run-queue latency: two spinners on one CPU give a p99 of milliseconds,
#     a task that sleeps and wakes on a quiet CPU gives microseconds;
#   - 'taskset -p' on a running process is an affinity event with its pid
#     and the new mask (seen at switch-out where fexit is refused: the mask
#     before too), and with --affinity-syscalls on a sleeping one, with the
#     caller and the result;
#   - a child in a small memory cgroup allocating until killed is an OOM
#     event with its pid and comm (the cgroup is removed afterwards);
#   - a kernel without BTF (EDGE_VMLINUX_BTF pointing nowhere): a clear
#     message and the rest of the profile from procfs.
# Spinners run in their own session with autogroup nice -20, so that other
# load on the machine does not take their CPU.
. tests/lib.sh
E=$BIN/edgectl
PIDS=""
CG=""
cleanup() {
	for p in $PIDS; do kill "$p" 2>/dev/null; done
	[ -n "${V2CG:-}" ] && [ -d "$V2CG" ] && rmdir "$V2CG" 2>/dev/null
	[ -n "$CG" ] && [ -d "$CG" ] && { cat "$CG/cgroup.procs" 2>/dev/null | while read -r p; do kill -9 "$p" 2>/dev/null; done; sleep 0.2; rmdir "$CG" 2>/dev/null; }
	rm -rf "$TMP"
}
trap cleanup EXIT

why=""
[ "$(id -u)" -eq 0 ] || why="not root"
[ -z "$why" ] && [ ! -r /sys/kernel/btf/vmlinux ] && why="no kernel BTF at /sys/kernel/btf/vmlinux"
[ -z "$why" ] && ! command -v jq >/dev/null && why="jq not installed"
[ -z "$why" ] && [ "$(nproc)" -lt 2 ] && why="fewer than 2 CPUs"
if [ -n "$why" ]; then
	skip "live profile" "$why"
	finish
fi
if ! "$E" profile --count 1 --interval 100ms --json 2>/dev/null | jq -e '.sources[] | select(.name=="bpf-sched") | .live' >/dev/null; then
	skip "live profile" "BPF cannot load here: $("$E" profile --count 1 --interval 100ms 2>&1 | grep 'not live: bpf-sched')"
	finish
fi
jqe() { jq -e "$@" >/dev/null; }
# wait_lines FILE N: until FILE has N lines (a profile has attached and
# finished N ticks), at most 20 s
wait_lines() { for _ in $(seq 200); do [ "$(wc -l < "$1" 2>/dev/null || echo 0)" -ge "$2" ] && return 0; sleep 0.1; done; return 1; }
# wait_until CMD...: until CMD succeeds, at most 10 s (no fixed sleeps: under
# emulation (tests/vm) a fork or an exit can take far longer than here)
wait_until() { for _ in $(seq 100); do "$@" && return 0; sleep 0.1; done; return 1; }
nprocs_ge() { [ "$(ps -o pid= -s "$1" 2>/dev/null | wc -l)" -ge "$2" ]; }
cg_empty() { [ ! -s "$1/cgroup.procs" ]; }

# spin CPU [N]: start a spinner pinned to CPU (N processes in one session);
# sets SPIN to the pid of the first
spin() {
	rm -f "$TMP/spin.pid"
	setsid taskset -c "$1" sh -c 'echo $$ > "$0"; echo -20 > /proc/$$/autogroup 2>/dev/null
		i=1; while [ $i -lt "$1" ]; do sh -c "while :; do :; done" & i=$((i+1)); done
		exec sh -c "while :; do :; done"' "$TMP/spin.pid" "${2:-1}" &
	wait_until test -s "$TMP/spin.pid"
	SPIN=$(cat "$TMP/spin.pid")
	PIDS="$PIDS $SPIN"
	wait_until nprocs_ge "$SPIN" "${2:-1}"
	for c in $(pgrep -P "$SPIN" 2>/dev/null) $(ps -o pid= -s "$SPIN" 2>/dev/null); do PIDS="$PIDS $c"; done
}
stop_spin() { for p in $(ps -o pid= -s "$SPIN" 2>/dev/null) $SPIN; do kill "$p" 2>/dev/null; done; }

# busy% of one CPU between two /proc/stat samples (busy = all - idle - iowait - steal)
cpu_line() { grep "^cpu$1 " /proc/stat; }
busy_pct() {
	echo "$1 $2" | awk '{ t1=0; for (i=2;i<=11;i++) t1+=$i; i1=$5+$6+$9;
		t2=0; for (i=13;i<=22;i++) t2+=$i; i2=$16+$17+$20;
		dt=t2-t1-($20-$9); if (dt<=0) { print 0; exit } printf "%.1f", 100*(dt-(i2-i1-($20-$9)))/dt }'
}
near() { awk -v a="$1" -v b="$2" -v d="$3" 'BEGIN { x=a-b; if (x<0) x=-x; exit !(x<=d) }'; }
ge() { awk -v a="$1" -v b="$2" 'BEGIN { exit !(a>=b) }'; }
le() { awk -v a="$1" -v b="$2" 'BEGIN { exit !(a<=b) }'; }

# ---- pinned spinner: target busy on CPU 1, idle on CPU 0 --------------------
# The BPF profile runs 3 ticks; the procfs one starts once the BPF one has
# printed its first (its programs loaded: under emulation that load is
# seconds of CPU 0) and covers the same last two ticks, give or take the
# start-up of a procfs profile.
spin 1
"$E" profile --pid "$SPIN" --interval 1s --count 3 --json > "$TMP/spin3.json" 2>"$TMP/spin.err" &
BP=$!
for _ in $(seq 1 300); do [ -s "$TMP/spin3.json" ] && break; kill -0 $BP 2>/dev/null || break; sleep 0.05; done
a=$(cpu_line 1)
"$E" profile --no-bpf --pid "$SPIN" --interval 1s --count 2 --json > "$TMP/spinp.json" 2>/dev/null
wait $BP
b=$(cpu_line 1)
stop_spin
tail -n +2 "$TMP/spin3.json" > "$TMP/spin.json"
ps1=$(busy_pct "$a" "$b")
t1=$(jq -s '[.[].cpus.cpu[1].target_pct] | add / length' "$TMP/spin.json")
t0=$(jq -s '[.[].cpus.cpu[0].target_pct] | add / length' "$TMP/spin.json")
b1=$(jq -s '[.[].cpus.cpu[1].busy_pct] | add / length' "$TMP/spin.json")
echo "spinner: CPU1 target ${t1}% busy ${b1}%, CPU0 target ${t0}%, /proc/stat CPU1 busy ${ps1}%"
check "spinner: source is bpf" jqe -s 'all(.[]; .cpus.src == "bpf")' "$TMP/spin.json"
check "spinner: CPU 1 >= 90% busy for the target" ge "$t1" 90
check "spinner: CPU 0 near idle for the target (<= 5%)" le "$t0" 5
check "spinner: CPU 1 busy within 10 points of /proc/stat" near "$b1" "$ps1" 10
check "spinner: the thread at >= 90% of a CPU" ge "$(jq -s '[.[].threads.t[0].cpu_pct] | add / length' "$TMP/spin.json")" 90
# procfs fallback against BPF, per CPU: the target's share on both CPUs and the
# spinner's CPU's busy time. Not CPU 0's busy time: it holds the two profilers'
# own work, which is not the same for both (under emulation: BPF 15 %, procfs
# 5 % in the arm64 VM once, 2026-12-06)
ok=1
for c in 0 1; do
	for f in target_pct $([ $c = 1 ] && echo busy_pct); do
		x=$(jq -s "[.[].cpus.cpu[$c].$f] | add / length" "$TMP/spin.json")
		y=$(jq -s "[.[].cpus.cpu[$c].$f] | add / length" "$TMP/spinp.json")
		echo "cpu$c $f: bpf $x procfs $y"
		near "$x" "$y" 10 || ok=0
	done
done
check "procfs fallback: source is procfs" jqe -s 'all(.[]; .cpus.src == "procfs")' "$TMP/spinp.json"
check "procfs fallback agrees with BPF within 10 points (target per CPU, spinner's CPU busy)" test $ok -eq 1

# ---- cgroup v2 filter (by cgroup id) -----------------------------------------
v2=$(awk '$3 == "cgroup2" { print $2; exit }' /proc/mounts)
V2CG=""
if [ -n "$v2" ] && mkdir "$v2/edge-profile-test-$$" 2>/dev/null; then
	V2CG="$v2/edge-profile-test-$$"
	# pinned after joining: where cpuset is enabled (a pure v2 host), a
	# task that joins a cgroup gets the cgroup's CPUs as its affinity
	setsid sh -c 'echo $$ > "$0"; echo $$ > "$1/cgroup.procs"; echo -20 > /proc/$$/autogroup 2>/dev/null; exec taskset -c 1 sh -c "while :; do :; done"' "$TMP/v2.pid" "$V2CG" &
	wait_until test -s "$TMP/v2.pid"
	V2P=$(cat "$TMP/v2.pid"); PIDS="$PIDS $V2P"
	wait_until grep -qx "$V2P" "$V2CG/cgroup.procs"
	wait_until grep -q '^Cpus_allowed_list:[[:space:]]*1$' "/proc/$V2P/status"
	"$E" profile --cgroup "$V2CG" --interval 1s --count 2 --json > "$TMP/v2.json" 2>/dev/null
	kill "$V2P"; wait_until cg_empty "$V2CG"
	rmdir "$V2CG" && V2CG=""
	check "cgroup v2 (by id): filtered in BPF (source bpf)" jqe -s 'all(.[]; .cpus.src == "bpf")' "$TMP/v2.json"
	check "cgroup v2 (by id): version and path" jqe -s --arg p "/edge-profile-test-$$" 'all(.[]; .cgroup.version == "v2" and .cgroup.path == $p)' "$TMP/v2.json"
	check "cgroup v2 (by id): its spinner >= 90% of CPU 1 as the target" \
		ge "$(jq -s '[.[].cpus.cpu[1].target_pct] | add / length' "$TMP/v2.json")" 90
	check "cgroup v2 (by id): only its task among the threads" jqe -s --argjson p "$V2P" 'all(.[]; .threads.t | map(.pid) | unique == [$p])' "$TMP/v2.json"
	check "cgroup v2 test cgroup removed" test -z "$V2CG"
else
	skip "cgroup v2 filter" "no cgroup2 mount to make a child cgroup in"
fi

# ---- run-queue latency -----------------------------------------------------
spin 1 2
"$E" profile --pid "$SPIN" --interval 1s --count 2 --json > "$TMP/rq2.json" 2>/dev/null
stop_spin
p99=$(jq -s '[.[].threads.rq_p99_ns] | max' "$TMP/rq2.json")
echo "two spinners on CPU 1: target p99 ${p99} ns"
check "two spinners on one CPU: p99 >= 1 ms" ge "$p99" 1000000
mkfifo "$TMP/fifo"
setsid sh -c 'echo $$ > "$0"; echo -20 > /proc/$$/autogroup 2>/dev/null; exec bash -c "exec 3<>\"$1\"; while :; do read -t 0.005 -u 3 x; done"' "$TMP/sleeper.pid" "$TMP/fifo" &
wait_until test -s "$TMP/sleeper.pid"
SL=$(cat "$TMP/sleeper.pid"); PIDS="$PIDS $SL"
"$E" profile --pid "$SL" --interval 1s --count 2 --json > "$TMP/rq1.json" 2>/dev/null
kill "$SL"
p50=$(jq -s '[.[].threads.rq_p50_ns] | max' "$TMP/rq1.json")
n=$(jq -s '[.[].threads.rq_count] | add' "$TMP/rq1.json")
echo "sleeper waking every 5 ms: $n wakeups, p50 ${p50} ns, p99 $(jq -s '[.[].threads.rq_p99_ns] | max' "$TMP/rq1.json") ns"
check "sleeper: wakeups measured" ge "$n" 50
check "sleeper: p50 in microseconds (< 1 ms)" le "$p50" 999999

# ---- affinity event -----------------------------------------------------------
# A shell that wakes every 50 ms (it waits for its sleep child): running, so a
# change of its mask is seen whichever way bpf-events catches it (fexit sees
# the call; where fexit is refused the default watches each thread's CPU mask
# at its switch-out: no caller, the mask before and after).
sh -c 'echo $$ > "$0"; while :; do sleep 0.05; done' "$TMP/loop.pid" &
wait_until test -s "$TMP/loop.pid"
SP=$(cat "$TMP/loop.pid"); PIDS="$PIDS $SP"
ALL=0x$(taskset -p "$SP" | sed 's/.*: *//')
"$E" profile --interval 1s --count 3 --json > "$TMP/ev.json" 2>/dev/null &
EP=$!
wait_lines "$TMP/ev.json" 1
taskset -p 0x2 "$SP" >/dev/null
wait $EP
kill "$SP"
EVMODE=$(jq -rs '.[0].sources[] | select(.name == "bpf-events") | .why' "$TMP/ev.json")
echo "bpf-events: $EVMODE"
check "taskset -p: affinity event with pid and mask 0x2" \
	jqe -s --argjson p "$SP" '[.[].events.ev[] | select(.type=="affinity" and .pid==$p and .cpumask=="0x2")] | length == 1' "$TMP/ev.json"
case $EVMODE in
*"switch-out"*)
	check "taskset -p: not a syscall hook by default (seen at switch-out)" \
		jqe -s --argjson p "$SP" '[.[].events.ev[] | select(.type=="affinity" and .pid==$p)][0] | .at_switch == true and .comm == "sh"' "$TMP/ev.json"
	check "taskset -p: the mask before ($ALL)" \
		jqe -s --argjson p "$SP" --arg all "$ALL" '[.[].events.ev[] | select(.type=="affinity" and .pid==$p)][0].prev_cpumask == $all' "$TMP/ev.json" ;;
*)
	check "taskset -p: the caller is taskset, result 0" \
		jqe -s --argjson p "$SP" '[.[].events.ev[] | select(.type=="affinity" and .pid==$p)][0] | .comm == "taskset" and .result == 0' "$TMP/ev.json" ;;
esac

# --affinity-syscalls: the call itself (caller and result), even for a
# sleeping process, through fexit or a syscall hook
sh -c 'echo $$ > "$0"; exec sleep 30' "$TMP/sleep.pid" &
wait_until test -s "$TMP/sleep.pid"
SP=$(cat "$TMP/sleep.pid"); PIDS="$PIDS $SP"
"$E" profile --affinity-syscalls --interval 1s --count 3 --json > "$TMP/evs.json" 2>/dev/null &
EP=$!
wait_lines "$TMP/evs.json" 1
taskset -p 0x2 "$SP" >/dev/null
wait $EP
kill "$SP"
check "--affinity-syscalls: a call hook, not the switch watch" \
	jqe -s 'all(.[]; .sources[] | select(.name == "bpf-events") | .live and (.why | test("fexit|syscall")))' "$TMP/evs.json"
check "--affinity-syscalls: sleeping process: event with pid, mask 0x2, result 0" \
	jqe -s --argjson p "$SP" '[.[].events.ev[] | select(.type=="affinity" and .pid==$p and .cpumask=="0x2" and .result==0)] | length == 1' "$TMP/evs.json"
check "--affinity-syscalls: the caller is taskset" jqe -s --argjson p "$SP" '[.[].events.ev[] | select(.type=="affinity" and .pid==$p)][0].comm == "taskset"' "$TMP/evs.json"

# ---- OOM event ------------------------------------------------------------------
if [ -d /sys/fs/cgroup/memory ] && [ -f /sys/fs/cgroup/memory/memory.limit_in_bytes ]; then
	parent=/sys/fs/cgroup/memory$(sed -n 's/^[0-9]*:memory:\(.*\)$/\1/p' /proc/self/cgroup)
	CG=${parent%/}/edge-oom-test-$$
	mkdir "$CG" && echo 32M > "$CG/memory.limit_in_bytes" && { echo 32M > "$CG/memory.memsw.limit_in_bytes" 2>/dev/null; true; }
	flavour=v1
elif grep -qw memory /sys/fs/cgroup/cgroup.subtree_control 2>/dev/null; then
	CG=/sys/fs/cgroup/edge-oom-test-$$
	mkdir "$CG" && echo 32M > "$CG/memory.max" && { echo 0 > "$CG/memory.swap.max" 2>/dev/null; true; }
	flavour=v2
else
	flavour=""
fi
if [ -z "$flavour" ] || [ ! -d "$CG" ]; then
	skip "oom event" "no memory cgroup controller to make a small cgroup in"
else
	"$E" profile --interval 1s --count 3 --json > "$TMP/oom.json" 2>/dev/null &
	EP=$!
	wait_lines "$TMP/oom.json" 1
	# tail keeps every byte of a file without newlines: it grows until killed
	sh -c 'echo $$ > "$0"; echo $$ > "$1/cgroup.procs"; exec tail /dev/zero' "$TMP/oom.pid" "$CG" 2>/dev/null
	wait $EP
	OP=$(cat "$TMP/oom.pid")
	check "oom ($flavour cgroup): event with pid and comm tail" \
		jqe -s --argjson p "$OP" '[.[].events.ev[] | select(.type=="oom" and .pid==$p and .comm=="tail")] | length >= 1' "$TMP/oom.json"
	check "oom: memory figures (anon_rss_kb > 16 MiB)" \
		jqe -s --argjson p "$OP" '[.[].events.ev[] | select(.type=="oom" and .pid==$p)][0].anon_rss_kb > 16384' "$TMP/oom.json"
	rmdir "$CG" && CG=""
	check "oom: test cgroup removed" test -z "$CG"
fi

# ---- --no-affinity-events: the event tracer without sched_setaffinity -------
"$E" profile --no-affinity-events --interval 200ms --count 2 --json > "$TMP/noaff.json" 2>/dev/null &
NA=$!
sleep 30 & NS=$!
wait_until test -s "$TMP/noaff.json"
taskset -p 0x1 "$NS" > /dev/null 2>&1
wait $NA
kill "$NS" 2>/dev/null
check "--no-affinity-events: bpf-events live without affinity" \
	jqe -s 'all(.[]; .sources[] | select(.name == "bpf-events") | .live and (.why | test("no affinity")))' "$TMP/noaff.json"
check "--no-affinity-events: no affinity event" jqe -s '[.[].events.ev[]? | select(.type == "affinity")] | length == 0' "$TMP/noaff.json"

# ---- a kernel without BTF ---------------------------------------------------
EDGE_VMLINUX_BTF=/nonexistent/vmlinux "$E" profile --interval 200ms --count 1 > "$TMP/nobtf" 2>&1
rc=$?
check "no BTF: exit 0" test $rc -eq 0
check "no BTF: clear message" grep -q 'not live: bpf-sched: kernel BTF /nonexistent/vmlinux: No such file or directory' "$TMP/nobtf"
check "no BTF: CPU view from procfs" grep -q 'heat .*(procfs)' "$TMP/nobtf"
check "no BTF: bad --btf file: message" sh -c "'$E' profile --btf /nonexistent --count 1 --interval 100ms 2>&1 | grep -q 'kernel BTF /nonexistent'"
finish
