#!/bin/bash
# tests/vm/suite.sh: the checks that need a pure cgroup v2 hierarchy, run
# inside the test VM after the project's integration scripts (which cover
# the BPF collectors: spinner, affinity and OOM events). Root, a cgroup2
# mount at /sys/fs/cgroup with cpu, cpuset, memory and pids enabled for
# children (tests/vm/init.sh sets that up). Same PASS:/FAIL:/SKIP: lines as
# tests/integration/*.sh.
#  - OOM in a cgroup with a small memory.max: the kernel's memory.events
#    oom_kill, and the same count in `edgectl profile --cgroup` (cgroupfs);
#  - edgectl tune --pid --apply on v2: cpu.max, cpu.weight and the thread
#    CPUs exactly as printed, the whole process (every thread) moved, and
#    revert restoring membership and affinity byte for byte, no cgroup left;
#  - edgectl tune --cgroup on a v2 cgroup the test owns: cpu.max (CPUQuota=35%
#    is "35000 100000"), cpuset.cpus, cpu.weight applied and read back,
#    revert restores every file byte for byte;
#  - edgectl supervise running `dify-edge serve` in its v2 cgroup: the core
#    in NAME/core, healthy, SIGTERM reverts and removes the cgroup.
. tests/lib.sh
E=$BIN/edgectl
D=$BIN/dify-edge
R=/sys/fs/cgroup
export EDGECTL_STATE=$TMP/state.json
PIDS=()
OURCG=()
cleanup() {
	for p in "${PIDS[@]}"; do kill -9 "$p" 2>/dev/null; done
	[ -f "$EDGECTL_STATE" ] && "$E" revert --quiet >/dev/null 2>&1
	for d in "${OURCG[@]}"; do
		[ -d "$d" ] || continue
		while read -r p; do echo "$p" > $R/cgroup.procs 2>/dev/null; done < "$d/cgroup.procs"
		rmdir "$d" 2>/dev/null
	done
	rm -rf "$TMP"
}
trap cleanup EXIT

if [ "$(id -u)" -ne 0 ] || [ ! -f $R/cgroup.controllers ] || grep -q ' cgroup cgroup ' /proc/self/mountinfo; then
	skip "cgroup v2 suite" "needs root and a pure cgroup v2 hierarchy at $R"
	finish
fi
for c in cpu cpuset memory pids; do
	grep -qw $c $R/cgroup.subtree_control && pass "v2: $c enabled for children" \
		|| fail "v2: $c enabled for children" "subtree_control: $(cat $R/cgroup.subtree_control)"
done

spinner() { bash -c 'while :; do :; done' >/dev/null 2>&1 & P=$!; disown "$P"; PIDS+=("$P"); }
# wait_until CMD...: until CMD succeeds, at most 20 s (no fixed sleeps: under
# emulation a fork, an exec or an exit takes a while, more on a loaded host)
wait_until() { for _ in $(seq 200); do "$@" && return 0; sleep 0.1; done; return 1; }
cg_empty() { [ ! -s "$1/cgroup.procs" ]; }
# the process runs PROG (setsid and taskset have exec'ed it)
runs() { [ "$(cat /proc/$1/comm 2>/dev/null)" = "$2" ]; }
# the process's cgroup and every thread's affinity
proc_state() { cat /proc/$1/cgroup; for t in /proc/$1/task/*; do grep Cpus_allowed_list "$t/status"; done; }

# ---- BPF affinity event, with the profile attached before the taskset ----
# (profile_live.sh sleeps a fixed 1.5 s; under emulation loading the BPF
# programs can take longer, so here the first tick is awaited)
# A shell waking every 50 ms: running, so the change is seen whether fexit
# catches the call or (no trampolines) the switch watch sees the new mask.
sh -c 'echo $$ > "$0"; while :; do sleep 0.05; done' "$TMP/sleep.pid" &
PIDS+=($!)
wait_until test -s "$TMP/sleep.pid"
SP=$(cat "$TMP/sleep.pid")
"$E" profile --interval 1s --count 4 --json > "$TMP/ev.json" 2>"$TMP/ev.err" &
EP=$!
for _ in $(seq 200); do [ -s "$TMP/ev.json" ] && break; sleep 0.1; done
taskset -p 0x2 "$SP" >/dev/null
wait $EP
kill "$SP" 2>/dev/null
if jq -e -s --argjson p "$SP" '[.[].events.ev[] | select(.type=="affinity" and .pid==$p and .cpumask=="0x2" and .result==0)] | length == 1' "$TMP/ev.json" >/dev/null 2>&1; then
	pass "bpf: taskset -p is an affinity event with pid and mask 0x2"
else
	fail "bpf: taskset -p is an affinity event with pid and mask 0x2" "events: $(jq -c -s '[.[].events.ev[] | select(.type=="affinity")]' "$TMP/ev.json" 2>&1 | head -c 400); sources: $(jq -c -s '.[0].sources' "$TMP/ev.json" 2>&1 | head -c 300)"
fi

# ---- BPF: a pinned spinner, ticks after the first ----
# (the first tick covers the programs' load, which takes seconds under
# emulation; a spinner alone on its CPU rarely switches, so its run time is
# credited at the next switch: judge the mean of ticks 2..4)
setsid taskset -c 1 bash -c 'while :; do :; done' > /dev/null 2>&1 &
SPN=$!; PIDS+=($SPN)
wait_until runs "$SPN" bash
"$E" profile --pid "$SPN" --interval 1s --count 4 --json > "$TMP/spin.json" 2>"$TMP/spin.err"
t1=$(jq -s '[.[1:][].cpus.cpu[1].target_pct] | add / length' "$TMP/spin.json" 2>/dev/null)
t0=$(jq -s '[.[1:][].cpus.cpu[0].target_pct] | add / length' "$TMP/spin.json" 2>/dev/null)
src=$(jq -r -s '[.[].cpus.src] | unique | join(",")' "$TMP/spin.json" 2>/dev/null)
echo "spinner on CPU 1 (ticks 2-4): target CPU1 $t1% CPU0 $t0% (source $src)"
[ "$src" = bpf ] && pass "bpf: spinner profile from bpf" || fail "bpf: spinner profile from bpf" "source '$src'; $(head -c 300 "$TMP/spin.err")"
awk -v a="${t1:-0}" 'BEGIN { exit !(a >= 90) }' && pass "bpf: pinned spinner >= 90% of CPU 1 for the target" \
	|| fail "bpf: pinned spinner >= 90% of CPU 1 for the target" "got ${t1:-none}% (per tick: $(jq -c -s '[.[].cpus.cpu[1].target_pct]' "$TMP/spin.json" 2>&1 | head -c 100))"
awk -v a="${t0:-100}" 'BEGIN { exit !(a <= 5) }' && pass "bpf: CPU 0 idle for the target" || fail "bpf: CPU 0 idle for the target" "got ${t0:-none}%"
kill -9 $SPN

# ---- BPF: the OOM tracepoint event, profile attached first ----
CG=$R/edge-vm-oomev
mkdir $CG && OURCG+=($CG)
echo 32M > $CG/memory.max; echo 0 > $CG/memory.swap.max 2>/dev/null
"$E" profile --interval 1s --count 4 --json > "$TMP/oomev.json" 2>"$TMP/oomev.err" &
EP=$!
for _ in $(seq 200); do [ -s "$TMP/oomev.json" ] && break; sleep 0.1; done
sh -c 'echo $$ > "$0"; echo $$ > "$1/cgroup.procs"; exec tail /dev/zero' "$TMP/oom.pid" $CG 2>/dev/null
wait $EP
OP=$(cat "$TMP/oom.pid")
jq -e -s --argjson p "$OP" '[.[].events.ev[] | select(.type=="oom" and .pid==$p and .comm=="tail" and .anon_rss_kb > 16384)] | length >= 1' "$TMP/oomev.json" >/dev/null 2>&1 \
	&& pass "bpf: OOM kill in a 32M memory.max cgroup is an oom event (pid, comm tail, anon_rss > 16 MiB)" \
	|| fail "bpf: OOM kill is an oom event" "events: $(jq -c -s '[.[].events.ev[] | select(.type=="oom")]' "$TMP/oomev.json" 2>&1 | head -c 300)"
rmdir $CG

# ---- OOM in a small memory.max: memory.events and the cgroup collector ----
CG=$R/edge-vm-oom
mkdir $CG && OURCG+=($CG)
echo 32M > $CG/memory.max; echo 0 > $CG/memory.swap.max 2>/dev/null
"$E" profile --cgroup /edge-vm-oom --interval 1s --count 3 --json > "$TMP/oomcg.json" 2>"$TMP/oomcg.err" &
EP=$!
for _ in $(seq 200); do [ -s "$TMP/oomcg.json" ] && break; sleep 0.1; done
sh -c 'echo $$ > "$0/cgroup.procs"; exec tail /dev/zero' $CG 2>/dev/null
wait $EP
k=$(sed -n 's/^oom_kill //p' $CG/memory.events)
[ "${k:-0}" -ge 1 ] && pass "oom: memory.events oom_kill $k" || fail "oom: memory.events oom_kill" "$(tr '\n' ' ' < $CG/memory.events)"
got=$(jq -s '[.[].cgroup.mem_events_oom_kill] | max' "$TMP/oomcg.json" 2>/dev/null)
[ "$got" = "$k" ] && pass "oom: edgectl profile --cgroup shows oom_kill $got (cgroupfs)" \
	|| fail "oom: edgectl profile --cgroup shows oom_kill" "profile says '$got', memory.events $k; $(head -c 300 "$TMP/oomcg.err")"
jq -e -s '[.[0].sources[] | select(.name == "bpf-sched" or .name == "bpf-events") | .live] == [true, true]' "$TMP/oomcg.json" >/dev/null 2>&1 \
	&& pass "bpf: --cgroup profile: bpf-sched and bpf-events live (filtered by the cgroup's id)" \
	|| fail "bpf: --cgroup profile: bpf-sched and bpf-events live" "$(jq -c -s '.[0].sources' "$TMP/oomcg.json" 2>&1 | head -c 400)"
jq -e -s '[.[].events.ev[] | select(.type == "oom" and .comm == "tail")] | length >= 1' "$TMP/oomcg.json" >/dev/null 2>&1 \
	&& pass "bpf: --cgroup profile: the OOM kill in the cgroup is an oom event" \
	|| fail "bpf: --cgroup profile: the OOM kill is an oom event" "events: $(jq -c -s '[.[].events.ev[]]' "$TMP/oomcg.json" 2>&1 | head -c 300)"
got=$(jq -s -r '[.[].cgroup.mem_max_bytes] | max' "$TMP/oomcg.json" 2>/dev/null)
[ "$got" = 33554432 ] && pass "oom: memory.max read back as 32 MiB" || fail "oom: memory.max read back" "got '$got'"
rmdir $CG && pass "oom: test cgroup removed" || fail "oom: test cgroup removed" "rmdir $CG"

# ---- tune --pid --apply on v2, revert ----
spinner
proc_state "$P" > "$TMP/before"
if "$E" tune --pid "$P" --duration 2s --apply > "$TMP/plan" 2> "$TMP/err"; then
	cat "$TMP/plan"
	cpus=$(sed -n 's/^cpus: //p' "$TMP/plan")
	q=$(sed -n 's/^cpu.max: \([0-9a-z-]*\) \([0-9]*\).*/\1 \2/p' "$TMP/plan")
	w=$(sed -n 's/^weight: \([0-9]*\).*/\1/p' "$TMP/plan")
	G=$R/edgectl/tune-$P
	echo "plan: cpus=$cpus cpu.max=$q weight=$w; kernel: cpu.max=$(cat $G/cpu.max 2>&1) weight=$(cat $G/cpu.weight 2>&1) cpus=$(sed -n 's/^Cpus_allowed_list:\t//p' /proc/$P/status) cgroup=$(cat /proc/$P/cgroup)"
	[ -n "$q" ] && [ "$(cat $G/cpu.max)" = "$q" ] && pass "v2 tune --apply: cpu.max as printed ($q)" \
		|| fail "v2 tune --apply: cpu.max as printed" "printed '$q', $G/cpu.max '$(cat $G/cpu.max 2>&1)'"
	[ -n "$w" ] && [ "$(cat $G/cpu.weight)" = "$w" ] && pass "v2 tune --apply: cpu.weight as printed ($w)" \
		|| fail "v2 tune --apply: cpu.weight as printed" "printed '$w', file '$(cat $G/cpu.weight 2>&1)'"
	[ -n "$cpus" ] && [ "$(sed -n 's/^Cpus_allowed_list:\t//p' /proc/$P/status)" = "$cpus" ] && pass "v2 tune --apply: thread CPUs as printed ($cpus)" \
		|| fail "v2 tune --apply: thread CPUs as printed" "printed '$cpus'"
	[ "$(cat /proc/$P/cgroup)" = "0::/edgectl/tune-$P" ] && pass "v2 tune --apply: process in /edgectl/tune-$P" \
		|| fail "v2 tune --apply: process moved" "$(cat /proc/$P/cgroup)"
	"$E" revert > "$TMP/rev" 2>&1 || fail "v2 revert" "$(cat "$TMP/rev")"
	proc_state "$P" > "$TMP/after"
	cmp -s "$TMP/before" "$TMP/after" && pass "v2 revert: membership and affinity byte for byte" \
		|| fail "v2 revert: membership and affinity byte for byte" "$(diff "$TMP/before" "$TMP/after" | tr '\n' ' ')"
	[ ! -d $R/edgectl ] && pass "v2 revert: no cgroup left" || fail "v2 revert: no cgroup left" "$R/edgectl exists"
else
	fail "v2 tune --pid --apply" "$(tail -n 1 "$TMP/err")"
fi

# ---- a whole multi-threaded process: every thread moves ----
if [ -n "${TESTDATA:-}" ] && [ -f "$TESTDATA/stories260K.gguf" ]; then
	MODEL=$TESTDATA/stories260K.gguf
elif "$D" gguf write-random --arch llama --type q8_0 --dims layers=2,embd=64,ff=128,heads=2,kv_heads=1,ctx=128,vocab=512 -o "$TMP/tiny.gguf" >/dev/null 2>&1; then
	MODEL=$TMP/tiny.gguf
else
	MODEL=""
fi
PORT=18080
if [ -z "$MODEL" ]; then
	skip "v2 whole-process attach" "no model for dify-edge serve"
else
	"$D" serve --model-path "$MODEL" --host 127.0.0.1:$PORT -t 2 -P 1 -q > "$TMP/serve.log" 2>&1 &
	S=$!; PIDS+=("$S")
	for _ in $(seq 150); do curl -s -m 0.5 http://127.0.0.1:$PORT/health 2>/dev/null | grep -q ok && break; sleep 0.2; done
	nt=$(ls /proc/$S/task | wc -l)
	proc_state "$S" > "$TMP/before"
	if "$E" tune --pid "$S" --duration 1s --apply --quota 50% > "$TMP/plan" 2> "$TMP/err"; then
		bad=0
		for t in /proc/$S/task/*; do [ "$(cat $t/cgroup)" = "0::/edgectl/tune-$S" ] || bad=$((bad + 1)); done
		[ $bad -eq 0 ] && [ "$nt" -gt 2 ] && pass "v2 tune: all $nt threads of dify-edge moved" \
			|| fail "v2 tune: all threads moved" "$bad of $nt threads elsewhere"
		[ "$(cat $R/edgectl/tune-$S/cpu.max)" = "50000 100000" ] && pass "v2 tune --quota 50%: cpu.max 50000 100000" \
			|| fail "v2 tune --quota 50%" "cpu.max $(cat $R/edgectl/tune-$S/cpu.max 2>&1)"
		"$E" revert > "$TMP/rev" 2>&1 || fail "v2 revert (dify-edge)" "$(cat "$TMP/rev")"
		proc_state "$S" > "$TMP/after"
		cmp -s "$TMP/before" "$TMP/after" && pass "v2 revert (dify-edge): byte for byte" \
			|| fail "v2 revert (dify-edge): byte for byte" "$(diff "$TMP/before" "$TMP/after" | tr '\n' ' ')"
	else
		fail "v2 tune --pid dify-edge --apply" "$(tail -n 1 "$TMP/err")"
	fi
	kill "$S"; wait "$S" 2>/dev/null
fi

# ---- tune --cgroup on a v2 cgroup the test owns ----
C=edge-vm-tune
mkdir $R/$C && OURCG+=($R/$C)
echo "50000 100000" > $R/$C/cpu.max; echo 50 > $R/$C/cpu.weight; echo 0-1 > $R/$C/cpuset.cpus
spinner
echo "$P" > $R/$C/cgroup.procs
files="$R/$C/cpu.max $R/$C/cpu.weight $R/$C/cpuset.cpus"
cat $files > "$TMP/cg_before"; proc_state "$P" > "$TMP/before"
if "$E" tune --cgroup /$C --duration 1s --apply --quota 35% > "$TMP/plan" 2> "$TMP/err"; then
	cat "$TMP/plan"
	[ "$(cat $R/$C/cpu.max)" = "35000 100000" ] && pass "v2 --cgroup: CPUQuota=35% is cpu.max 35000 100000" \
		|| fail "v2 --cgroup: cpu.max" "$(cat $R/$C/cpu.max)"
	cpus=$(sed -n 's/^cpus: //p' "$TMP/plan")
	[ -n "$cpus" ] && [ "$(cat $R/$C/cpuset.cpus)" = "$cpus" ] && pass "v2 --cgroup: cpuset.cpus as printed ($cpus)" \
		|| fail "v2 --cgroup: cpuset.cpus as printed" "printed '$cpus', file '$(cat $R/$C/cpuset.cpus)'"
	w=$(sed -n 's/^weight: \([0-9]*\).*/\1/p' "$TMP/plan")
	[ -n "$w" ] && [ "$(cat $R/$C/cpu.weight)" = "$w" ] && pass "v2 --cgroup: cpu.weight as printed ($w)" \
		|| fail "v2 --cgroup: cpu.weight as printed" "printed '$w', file '$(cat $R/$C/cpu.weight)'"
	"$E" revert > "$TMP/rev" 2>&1 || fail "v2 revert (cgroup)" "$(cat "$TMP/rev")"
	cat $files > "$TMP/cg_after"; proc_state "$P" > "$TMP/after"
	cmp -s "$TMP/cg_before" "$TMP/cg_after" && pass "v2 revert: cgroup files byte for byte" \
		|| fail "v2 revert: cgroup files byte for byte" "$(diff "$TMP/cg_before" "$TMP/cg_after" | tr '\n' ' ')"
	cmp -s "$TMP/before" "$TMP/after" && pass "v2 revert: thread affinity after a cpuset write" \
		|| fail "v2 revert: thread affinity after a cpuset write" "$(diff "$TMP/before" "$TMP/after" | tr '\n' ' ')"
else
	fail "v2 tune --cgroup --apply" "$(tail -n 1 "$TMP/err")"
fi
kill -9 "$P"; wait_until cg_empty $R/$C
rmdir $R/$C 2>/dev/null

# ---- supervise: dify-edge serve in its v2 cgroup ----
if [ -z "$MODEL" ]; then
	skip "v2 supervise" "no model for dify-edge serve"
else
	SCG=edge-vm-sup
	cat > "$TMP/edge.ini" <<INI
[general]
cgroup = $SCG/core
socket = $TMP/sup.sock
audit_log = $TMP/audit.jsonl
start_grace = 20s
INI
	"$E" supervise --config "$TMP/edge.ini" -- "$D" serve --model-path "$MODEL" --host 127.0.0.1:$PORT -t 1 -P 1 -q > "$TMP/sup.out" 2> "$TMP/sup.err" &
	SUP=$!; PIDS+=("$SUP")
	ok=0
	for _ in $(seq 100); do curl -s -m 0.5 http://127.0.0.1:$PORT/health 2>/dev/null | grep -q ok && { ok=1; break; }; sleep 0.2; done
	core=$(cat $R/$SCG/core/cgroup.procs 2>/dev/null | head -n 1)
	[ $ok -eq 1 ] && pass "v2 supervise: core healthy" || fail "v2 supervise: core healthy" "$(head -c 300 "$TMP/sup.err")"
	[ -n "$core" ] && grep -q "dify-edge" /proc/$core/cmdline 2>/dev/null && pass "v2 supervise: dify-edge in /$SCG/core" \
		|| fail "v2 supervise: dify-edge in /$SCG/core" "cgroup.procs: '$(cat $R/$SCG/core/cgroup.procs 2>&1)'"
	snap() { curl -s -m 2 --unix-socket "$TMP/sup.sock" http://x/v1/snapshot 2>/dev/null | grep -q '"version":1'; }
	wait_until snap && pass "v2 supervise: /v1/snapshot" \
		|| fail "v2 supervise: /v1/snapshot" "no snapshot in 20 s: $(curl -s -m 2 --unix-socket "$TMP/sup.sock" http://x/v1/snapshot 2>&1 | head -c 200)"
	kill -TERM "$SUP"
	for _ in $(seq 50); do kill -0 "$SUP" 2>/dev/null || break; sleep 0.2; done
	kill -0 "$SUP" 2>/dev/null && fail "v2 supervise: exits on SIGTERM" "still running after 10 s" || pass "v2 supervise: exits on SIGTERM"
	[ ! -d $R/$SCG ] && pass "v2 supervise: SIGTERM removes its cgroup" || fail "v2 supervise: SIGTERM removes its cgroup" "$R/$SCG still there"
	[ -d $R/$SCG ] && OURCG+=($R/$SCG/core $R/$SCG)
fi
finish
