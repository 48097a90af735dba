#!/bin/bash
# controller_supervise.sh: edgectl supervise with the real core (dify-edge serve
# on a generated tiny model): threads grow under a burst of requests and shrink
# when idle, each decision in the audit log with its reason, no thread decision
# inside the cooldown of the previous one, a killed core restarted within 3 s,
# /v1/stream, /v1/snapshot and /metrics on the supervisor's socket, SIGTERM
# reverts everything (no cgroup left), and 'edgectl revert' after a kill -9 of
# the supervisor; with [bandwidth] realtime, a busy neighbour and a missed
# target make the pool's workers SCHED_FIFO (chrt) with an RT budget on the
# core's cgroup chain, a saturated worker goes back to SCHED_OTHER, and
# SIGTERM puts the budget back byte for byte.
# Bad input: one line, exit 2, nothing left behind.
. tests/lib.sh
E=$BIN/edgectl
D=$BIN/dify-edge
export EDGECTL_STATE=$TMP/state.json
CG=edgectl-itest-sup-$$
PORT=$((20000 + $$ % 20000))
SOCK=$TMP/sup.sock
AUDIT=$TMP/audit.jsonl
SUP=""

cleanup() {
	[ -n "$SUP" ] && kill -9 "$SUP" 2>/dev/null
	pkill -9 -f "dify-edge serve --model-path $TMP/" 2>/dev/null
	sleep 0.3
	[ -f "$EDGECTL_STATE" ] && "$E" revert --quiet >/dev/null 2>&1
	for c in cpu cpuacct cpuset memory; do
		for d in /sys/fs/cgroup/$c/$CG/core /sys/fs/cgroup/$c/$CG; do
			[ -d "$d" ] || continue
			while read -r p; do echo "$p" > /sys/fs/cgroup/$c/cgroup.procs 2>/dev/null; done < "$d/cgroup.procs"
			rmdir "$d" 2>/dev/null
		done
	done
	rm -rf "$TMP"
}
trap cleanup EXIT

no_cgroup() { for c in cpu cpuacct cpuset memory; do [ -d /sys/fs/cgroup/$c/$CG ] && return 1; done; return 0; }

if [ "$(id -u)" -ne 0 ] || ! grep -q ' cgroup cgroup .*cpu' /proc/self/mountinfo; then
	skip "supervise" "needs root and the cpu controller on cgroup v1"
	finish
fi
if ! "$D" gguf write-random --arch llama --type q8_0 --dims layers=4,embd=256,ff=768,heads=4,kv_heads=2,ctx=512,vocab=2048 -o "$TMP/tiny.gguf" >/dev/null 2>&1; then
	skip "supervise" "dify-edge gguf write-random failed: no model for the core"
	finish
fi

cat > "$TMP/edge.ini" <<INI
[general]
cgroup = $CG/core
socket = $SOCK
audit_log = $AUDIT
start_grace = 10s
sustain_ticks = 1
[threads]
queue_high = 2
mem_util_low = 0
cooldown = 3s
idle = 4s
[bandwidth]
ttft_p99_target = 30s
INI
CORE_ARGS=(-- "$D" serve --model-path "$TMP/tiny.gguf" --host 127.0.0.1:$PORT -t 1 -P 2 --queue 64 -q)

# ---- bad input ----
bad() { # NAME WANT ARGS...
	n=$1; want=$2; shift 2
	timeout 10 "$E" "$@" >"$TMP/out" 2>"$TMP/err"; rc=$?
	if [ $rc -ne 2 ]; then fail "$n" "exit $rc, want 2; stderr: $(cat "$TMP/err")"; return; fi
	if [ "$(wc -l < "$TMP/err")" -ne 1 ] || ! grep -q -- "$want" "$TMP/err"; then fail "$n" "stderr: $(cat "$TMP/err")"; return; fi
	if ! no_cgroup || [ -e "$EDGECTL_STATE" ]; then fail "$n" "left a cgroup or a state file"; return; fi
	pass "$n"
}
printf '[threads]\nqueue_hihg = 4\n' > "$TMP/typo.ini"
bad "supervise: config key with a typo" "typo.ini:2: unknown key 'queue_hihg' in \[threads\]" supervise --config "$TMP/typo.ini" "${CORE_ARGS[@]}"
bad "supervise: cgroup outside the hierarchy" "outside the cgroup hierarchy" supervise --config "$TMP/edge.ini" --cgroup ../../x "${CORE_ARGS[@]}"
bad "supervise: no core command" "no core command" supervise --config "$TMP/edge.ini"
printf '[general]\ncgroup = %s/core\nsocket = %s\naudit_log = %s\n[bandwidth]\nneighbours = /no/such/hog\n' "$CG" "$SOCK" "$AUDIT" > "$TMP/nb.ini"
bad "supervise: neighbour cgroup that does not exist" "neighbour cgroup /no/such/hog: no such cgroup" supervise --config "$TMP/nb.ini" "${CORE_ARGS[@]}"

wait_health() { # SECONDS
	for _ in $(seq $(( $1 * 20 ))); do
		curl -s -m 0.3 "http://127.0.0.1:$PORT/health" 2>/dev/null | grep -q '"status":"ok"' && return 0
		sleep 0.05
	done
	return 1
}

# ---- dry run: decisions logged, nothing created ----
"$E" supervise --config "$TMP/edge.ini" --dry-run "${CORE_ARGS[@]}" > "$TMP/dry.out" 2>&1 &
SUP=$!
wait_health 20 && sleep 3
if no_cgroup && [ ! -e "$EDGECTL_STATE" ]; then pass "dry run creates no cgroup and no state"; else fail "dry run creates no cgroup and no state" "found one"; fi
grep -q '"dry_run":true' "$AUDIT" && ! grep -q '"applied":true' "$AUDIT" && pass "dry run logs decisions, applies none" \
	|| fail "dry run logs decisions, applies none" "$(head -c 400 "$AUDIT")"
kill -TERM "$SUP"; wait "$SUP"; rc=$?; SUP=""
[ $rc -eq 0 ] && pass "dry run exits 0 on SIGTERM" || fail "dry run exits 0 on SIGTERM" "exit $rc: $(cat "$TMP/dry.out")"
rm -f "$AUDIT"

# ---- live ----
"$E" supervise --config "$TMP/edge.ini" "${CORE_ARGS[@]}" > "$TMP/sup.out" 2>&1 &
SUP=$!
if ! wait_health 30; then
	fail "supervise starts the core" "no /health: $(cat "$TMP/sup.out")"
	finish
fi
pass "supervise starts the core"
core=$(sed -n 's/.*"event":"core_start","pid":\([0-9]*\).*/\1/p' "$AUDIT" | head -1)
grep -q ":cpu:/$CG/core\$" /proc/$core/cgroup && grep -q ":cpuset:/$CG/core\$" /proc/$core/cgroup \
	&& pass "the core runs in its cgroup" || fail "the core runs in its cgroup" "$(grep -E 'cpu|memory' /proc/$core/cgroup | tr '\n' ' ')"

# load: 16 clients sending requests back to back for 10 s: the queue stays
# around 14 (2 slots) -> threads grow
LOAD=()
end=$(( $(date +%s) + 10 ))
for i in $(seq 16); do
	( while [ "$(date +%s)" -lt "$end" ]; do
		curl -s -m 60 "http://127.0.0.1:$PORT/v1/completions" -d '{"prompt":"tell me a story","max_tokens":100}' -o /dev/null
	done ) &
	LOAD+=($!)
done
grew=""
for _ in $(seq 150); do
	grew=$(grep '"policy":"threads"' "$AUDIT" | grep '"reason":"queue' | head -1)
	[ -n "$grew" ] && break
	sleep 0.1
done
[ -n "$grew" ] && pass "threads grow under load" || fail "threads grow under load" "no grow decision; audit: $(tail -4 "$AUDIT" | cut -c1-200)"
echo "$grew" | cut -c1-300
wait "${LOAD[@]}"
# idle -> shrink
shrank=""
for _ in $(seq 200); do
	shrank=$(grep '"policy":"threads"' "$AUDIT" | grep '"reason":"idle' | head -1)
	[ -n "$shrank" ] && break
	sleep 0.1
done
[ -n "$shrank" ] && pass "threads shrink when idle" || fail "threads shrink when idle" "no idle shrink: $(grep threads "$AUDIT" | tail -3)"
echo "$shrank" | cut -c1-300

# every decision has a reason and says whether it was applied
nd=$(grep -c '"policy":' "$AUDIT"); nr=$(grep '"policy":' "$AUDIT" | grep -c '"reason":"[^"]')
[ "$nd" -gt 0 ] && [ "$nd" -eq "$nr" ] && pass "each of $nd decisions in the audit log has its reason" || fail "each decision has a reason" "$nd decisions, $nr with reasons"
grep '"policy":' "$AUDIT" | grep -q '"applied":false' && fail "decisions applied" "$(grep '"applied":false' "$AUDIT" | head -2)" || pass "decisions applied"

# no thread decision inside the cooldown (3 s) of the previous one (cuts to the CPU count excepted)
prev=""; bad_cd=""
while read -r line; do
	ts=$(echo "$line" | sed -n 's/.*"ts":"\([^"]*\)".*/\1/p')
	t=$(date -d "$ts" +%s.%N)
	if [ -n "$prev" ] && ! echo "$line" | grep -q 'exceed the'; then
		awk -v a="$prev" -v b="$t" 'BEGIN { exit !(b - a < 2.95) }' && bad_cd="$bad_cd $ts"
	fi
	prev=$t
done < <(grep '"policy":"threads"' "$AUDIT")
[ -z "$bad_cd" ] && pass "no thread decision inside the cooldown of the previous one" || fail "cooldown respected" "decisions at$bad_cd"

# the supervisor's socket
curl -s -m 3 --unix-socket "$SOCK" http://x/v1/stream > "$TMP/stream" 2>/dev/null
n=$(grep -c '^{"tick":' "$TMP/stream")
[ "$n" -ge 2 ] && pass "/v1/stream gives one NDJSON line per tick ($n in 3 s)" || fail "/v1/stream" "$n lines"
curl -s --unix-socket "$SOCK" http://x/v1/snapshot | grep -q '"snapshot":{"version":1' && pass "/v1/snapshot" || fail "/v1/snapshot" "no snapshot"
# supervising does not put the machine's syscalls on the slow path: affinity
# events through fexit or the switch watch ([general] affinity_syscall_hook = false)
EVWHY=$(curl -s --unix-socket "$SOCK" http://x/v1/snapshot | jq -r '.snapshot.sources[] | select(.name == "bpf-events") | .why')
case $EVWHY in
*"syscall"*) fail "supervise: no syscall hook for affinity events" "bpf-events: $EVWHY" ;;
*"fexit"* | *"switch-out"*) pass "supervise: no syscall hook for affinity events ($EVWHY)" ;;
*) skip "supervise: no syscall hook for affinity events" "bpf-events not live: $EVWHY" ;;
esac
curl -s --unix-socket "$SOCK" http://x/metrics > "$TMP/metrics"
grep -q '^edgectl_ticks_total [1-9]' "$TMP/metrics" && grep -q '^edgectl_core_up 1' "$TMP/metrics" && pass "/metrics" || fail "/metrics" "$(head -5 "$TMP/metrics")"

# kill the core: restarted within 3 s
core=$(sed -n 's/.*"event":"core_\(start\|restart\)","pid":\([0-9]*\).*/\2/p' "$AUDIT" | tail -1)
t0=$(date +%s.%N); kill -9 "$core"
if wait_health 3; then
	t1=$(date +%s.%N)
	pass "killed core serving again within 3 s ($(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.2f", b - a }') s)"
else
	fail "killed core restarted within 3 s" "$(tail -2 "$AUDIT")"
fi
grep -q "\"event\":\"core_restart\".*killed by signal 9" "$AUDIT" && pass "restart logged with its reason" || fail "restart logged" "$(tail -2 "$AUDIT")"

# SIGTERM: stop and revert
kill -TERM "$SUP"; wait "$SUP"; rc=$?; SUP=""
[ $rc -eq 0 ] && pass "supervise exits 0 on SIGTERM" || fail "supervise exits 0 on SIGTERM" "exit $rc: $(cat "$TMP/sup.out")"
no_cgroup && pass "SIGTERM reverts: no cgroup left" || fail "SIGTERM reverts: no cgroup left" "$(ls -d /sys/fs/cgroup/*/$CG 2>/dev/null)"
[ ! -e "$EDGECTL_STATE" ] && pass "SIGTERM reverts: state removed" || fail "SIGTERM reverts: state removed" "still there"
pgrep -f "dify-edge serve --model-path $TMP/" >/dev/null && fail "core stopped" "still running" || pass "core stopped"

# kill -9 of the supervisor: the core goes with it, 'edgectl revert' removes the rest
rm -f "$AUDIT"
"$E" supervise --config "$TMP/edge.ini" "${CORE_ARGS[@]}" > "$TMP/sup.out" 2>&1 &
SUP=$!
wait_health 30 && sleep 2
kill -9 "$SUP"; wait "$SUP" 2>/dev/null; SUP=""
sleep 1
no_cgroup && fail "kill -9 leaves the cgroup for revert" "nothing left (unexpected)" || pass "kill -9 leaves the cgroup for revert"
if "$E" revert > "$TMP/rev" 2>&1 && no_cgroup; then pass "revert after kill -9 of supervise removes its cgroups"
else fail "revert after kill -9 of supervise" "$(cat "$TMP/rev")"; fi
# ---- real-time workers ([bandwidth] realtime): a busy neighbour and a missed target ----
HOGCG=$CG-hog
CPUFS=/sys/fs/cgroup/cpu
mkdir -p $CPUFS/$HOGCG $CPUFS/$CG
rt_file() { cat "$CPUFS/$1/cpu.rt_runtime_us" 2>/dev/null || echo none; }
rt_before_parent=$(rt_file $CG) rt_before_root=$(cat $CPUFS/cpu.rt_runtime_us 2>/dev/null || echo none)
sed -e 's/^ttft_p99_target = .*/ttft_p99_target = 0.1ms\nneighbours = \/'"$HOGCG"'\nrealtime = true\ncooldown = 1s/' \
	-e 's/^\[threads\]/[threads]\nenabled = false/' "$TMP/edge.ini" > "$TMP/rt.ini"
bash -c 'while :; do :; done' &
HOGPID=$!
echo $HOGPID > $CPUFS/$HOGCG/cgroup.procs
rm -f "$AUDIT"
"$E" supervise --config "$TMP/rt.ini" "${CORE_ARGS[@]}" > "$TMP/sup.out" 2>&1 &
SUP=$!
if wait_health 30; then
	( for _ in $(seq 150); do curl -s -m 10 "http://127.0.0.1:$PORT/v1/completions" -d '{"prompt":"once upon a time","max_tokens":2}' -o /dev/null; sleep 0.05; done ) &
	LOADP=$!
	rt=""
	for _ in $(seq 200); do
		rt=$(grep '"action":"set_realtime"' "$AUDIT" | head -1)
		[ -n "$rt" ] && break
		sleep 0.1
	done
	core=$(sed -n 's/.*"event":"core_start","pid":\([0-9]*\).*/\1/p' "$AUDIT" | head -1)
	if echo "$rt" | grep -q '"applied":true' && echo "$rt" | grep -q "SCHED_FIFO 1" && echo "$rt" | grep -q "neighbour $HOGCG"; then
		pass "realtime: set_realtime applied, with its reason ($(echo "$rt" | jq -r .reason | cut -c1-120))"
	elif echo "$rt" | grep -q 'Operation not permitted'; then
		skip "realtime: set_realtime applied" "the kernel refused SCHED_FIFO: $(echo "$rt" | jq -r .error)"
	else
		fail "realtime: set_realtime applied" "${rt:-no decision}; $(tail -3 "$AUDIT" | cut -c1-300)"
	fi
	nfifo=0
	for t in $(ls /proc/$core/task); do chrt -p "$t" 2>/dev/null | grep -q SCHED_FIFO && nfifo=$((nfifo + 1)); done
	if echo "$rt" | grep -q '"applied":true'; then
		[ "$nfifo" = 1 ] && pass "realtime: the pool's worker is SCHED_FIFO (chrt), no other thread" || fail "realtime: workers SCHED_FIFO" "$nfifo FIFO threads in the core"
		if [ "$rt_before_root" != none ]; then
			want=$(( $(cat $CPUFS/cpu.rt_period_us) * 90 / 100 ))
			[ "$(rt_file $CG/core)" = "$want" ] && [ "$(rt_file $CG)" = "$want" ] && pass "realtime: RT budget $want us on the core's cgroup and its parent" \
				|| fail "realtime: RT budget" "core $(rt_file $CG/core), parent $(rt_file $CG), want $want"
		else
			skip "realtime: RT budget on the core's cgroup" "no RT group scheduling in this kernel (no cpu.rt_runtime_us)"
		fi
	fi
	wait $LOADP
	# saturate the worker: back to SCHED_OTHER at once (realtime_max_busy 50 %)
	if echo "$rt" | grep -q '"applied":true'; then
		SAT=()
		end=$(( $(date +%s) + 8 ))
		for i in 1 2; do
			( while [ "$(date +%s)" -lt "$end" ]; do
				curl -s -m 30 "http://127.0.0.1:$PORT/v1/completions" -d '{"prompt":"a","max_tokens":400,"ignore_eos":true}' -o /dev/null
			done ) &
			SAT+=($!)
		done
		back=""
		for _ in $(seq 100); do
			back=$(grep '"action":"set_realtime","target":"core","from":1,"to":0' "$AUDIT" | head -1)
			[ -n "$back" ] && break
			sleep 0.1
		done
		nfifo=0
		for t in $(ls /proc/$core/task); do chrt -p "$t" 2>/dev/null | grep -q SCHED_FIFO && nfifo=$((nfifo + 1)); done
		if echo "$back" | grep -q 'realtime_max_busy' && echo "$back" | grep -q '"applied":true' && [ "$nfifo" = 0 ]; then
			pass "realtime: a saturated worker goes back to SCHED_OTHER ($(echo "$back" | jq -r .reason | cut -c1-60))"
		else
			fail "realtime: a saturated worker goes back to SCHED_OTHER" "${back:-no decision}, $nfifo FIFO threads; $(grep set_realtime "$AUDIT" | tail -2 | cut -c1-250)"
		fi
		wait "${SAT[@]}"
	fi
else
	fail "realtime: supervise starts the core" "$(cat "$TMP/sup.out")"
fi
kill -TERM "$SUP"; wait "$SUP"; rc=$?; SUP=""
kill -9 $HOGPID 2>/dev/null; wait $HOGPID 2>/dev/null
[ $rc -eq 0 ] && [ ! -e "$EDGECTL_STATE" ] && pass "realtime: SIGTERM reverts (state removed)" || fail "realtime: SIGTERM reverts" "exit $rc: $(tail -3 "$TMP/sup.out")"
[ "$(rt_file $CG)" = "$rt_before_parent" ] && [ "$(cat $CPUFS/cpu.rt_runtime_us 2>/dev/null || echo none)" = "$rt_before_root" ] \
	&& pass "realtime: the parent's cpu.rt_runtime_us back to '$rt_before_parent' byte for byte" \
	|| fail "realtime: cpu.rt_runtime_us restored" "parent $(rt_file $CG) (was $rt_before_parent)"
grep '"policy":"bandwidth"' "$AUDIT" | sed -n 's/.*"action":"\([a-z_]*\)","target":"\([^"]*\)","from":\([-0-9]*\),"to":\([-0-9]*\).*/  \1 \2 \3 -> \4/p' | head -8
rmdir $CPUFS/$HOGCG $CPUFS/$CG/core $CPUFS/$CG 2>/dev/null
no_cgroup && pass "realtime: no cgroup left" || fail "realtime: no cgroup left" "$(ls -d /sys/fs/cgroup/*/$CG 2>/dev/null)"
finish
