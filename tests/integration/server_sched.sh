#!/bin/bash
# server_sched.sh: scheduling and the admin socket under load, over real
# HTTP: P busy slots plus a queue, a full queue (503 + Retry-After),
# cancelled streams and requests free their slots, the admin socket resizes
# the pool and re-pins the workers while requests are served (affinity read
# back from /proc/PID/task/TID/status) and makes the workers SCHED_FIFO and
# back (read back with chrt), peer credentials, heap profiling,
# and the SIGTERM drain.
. tests/lib.sh
. tests/integration/server_common.inc

M=$TMP/long.gguf
if ! make_model "$M" "layers=2,embd=64,ff=192,heads=4,kv_heads=2,ctx=2048,vocab=512"; then
	fail "write model" "$(cat "$TMP/mkerr")"
	finish
fi
SOCK=$TMP/admin.sock
if ! start_server sched -m "$M" -P 2 --queue 2 -t 2 --ctx 2048 --admin-socket "$SOCK"; then
	fail "server starts" "$(tail -5 "$LOG")"
	finish
fi
wait_health 200
admin() { curl -s --unix-socket "$SOCK" -X "$1" "http://localhost$2" ${3:+-d "$3"}; }
poll() { # poll SECONDS CMD...: until CMD succeeds
	local t=$1
	shift
	for _ in $(seq 1 $((t * 20))); do
		"$@" && return 0
		sleep 0.05
	done
	return 1
}
busy_is() { [ "$(admin GET /admin/stats | jq '.slots_busy')" = "$1" ]; }
queued_is() { [ "$(admin GET /admin/stats | jq '.queue.length')" = "$1" ]; }

MODE=$(stat -c %a "$SOCK")
if [ "$MODE" = 600 ]; then pass "admin socket mode 0600"; else fail "admin socket mode 0600" "mode $MODE"; fi
if admin GET /admin/stats | jq -e '.model_loaded and .pool.threads == 2 and (.pool.workers|length) == 2 and (.pool.workers[0].tid > 0) and (.memory.rss_bytes > 0)' >/dev/null; then
	pass "admin stats"
else
	fail "admin stats" "$(admin GET /admin/stats | head -c 300)"
fi

LONG='{"prompt":"Once","max_tokens":1800,"ignore_eos":true,"stream":true}'
curl -sN "$U/v1/completions" -d "$LONG" -o "$TMP/s1" &
C1=$!
curl -sN "$U/v1/completions" -d "$LONG" -o "$TMP/s2" &
C2=$!
if poll 20 busy_is 2; then pass "two streams keep both slots busy"; else fail "two streams keep both slots busy" "$(admin GET /admin/stats | jq -c '.slots')"; fi
curl -sN "$U/v1/completions" -d "$LONG" -o "$TMP/s3" &
C3=$!
curl -sN "$U/v1/completions" -d "$LONG" -o "$TMP/s4" &
C4=$!
if poll 20 queued_is 2; then pass "two more wait in the queue"; else fail "two more wait in the queue" "$(admin GET /admin/stats | jq -c '.queue')"; fi
req GET /health
expect_code "health shows busy slots and queue" 200 '.slots_processing == 2 and .queue_length == 2'
req POST /v1/completions '{"prompt":"x","max_tokens":1}'
if [ "$CODE" = 503 ] && [ "$(header Retry-After)" -ge 1 ] 2>/dev/null && jq -e '.error.code == "queue_full"' "$TMP/body" >/dev/null; then
	pass "full queue: 503 with Retry-After"
else
	fail "full queue: 503 with Retry-After" "$CODE $(head -c 200 "$TMP/body")"
fi
if [ "$(metric dify_edge_queue_length)" = 2 ] && [ "$(metric dify_edge_slots_busy)" = 2 ]; then pass "metrics: queue length and busy slots"; else fail "metrics: queue length and busy slots" "$(metric dify_edge_queue_length) $(metric dify_edge_slots_busy)"; fi

# the controller's knobs, while the two streams run
R=$(admin PUT /admin/threads '{"n":1}')
if echo "$R" | jq -e '.threads == 1 and .previous == 2' >/dev/null && [ "$(metric dify_edge_threadpool_threads)" = 1 ]; then pass "admin: pool resized to 1 while serving"; else fail "admin: pool resized to 1" "$R"; fi
cpus_of() { sed -n 's/^Cpus_allowed_list:[[:space:]]*//p' "/proc/$SPID/task/$1/status"; }
R=$(admin PUT /admin/affinity '{"cpus":"0"}')
T0=$(echo "$R" | jq '.workers[0].tid')
if [ -n "$T0" ] && [ "$(cpus_of "$T0")" = 0 ]; then pass "admin: all workers pinned to CPU 0 (/proc)"; else fail "admin: all workers pinned to CPU 0" "$R / $(cpus_of "$T0")"; fi
NCPU=$(nproc)
R=$(admin PUT /admin/threads '{"n":2}')
if echo "$R" | jq -e '.threads == 2 and (.workers|length) == 2' >/dev/null; then pass "admin: pool grown back to 2"; else fail "admin: pool grown back to 2" "$R"; fi
if [ "$NCPU" -ge 2 ]; then
	R=$(admin PUT /admin/affinity '{"workers":[{"worker":0,"cpus":"1"},{"worker":1,"cpus":"0"}]}')
	W0=$(echo "$R" | jq '.workers[0].tid') W1=$(echo "$R" | jq '.workers[1].tid')
	if [ "$(cpus_of "$W0")" = 1 ] && [ "$(cpus_of "$W1")" = 0 ]; then pass "admin: per-worker affinity (/proc)"; else fail "admin: per-worker affinity" "$R / $(cpus_of "$W0") $(cpus_of "$W1")"; fi
	admin PUT /admin/affinity "{\"cpus\":\"0-$((NCPU - 1))\"}" >/dev/null
else
	skip "admin: per-worker affinity" "one CPU"
fi
R=$(admin PUT /admin/affinity '{"cpus":"banana"}')
if echo "$R" | jq -e '.error.code == "invalid_value"' >/dev/null; then pass "admin: bad CPU list refused"; else fail "admin: bad CPU list refused" "$R"; fi
R=$(admin PUT /admin/threads '{"n":0}')
if echo "$R" | jq -e '.error.param == null and .error.code == "invalid_value"' >/dev/null; then pass "admin: bad thread count refused"; else fail "admin: bad thread count refused" "$R"; fi
if [ "$(id -u)" = 0 ] && command -v setpriv >/dev/null; then
	chmod 666 "$SOCK"
	R=$(setpriv --reuid 65534 --regid 65534 --clear-groups curl -s --unix-socket "$SOCK" http://localhost/admin/stats)
	chmod 600 "$SOCK"
	if echo "$R" | jq -e '.error.code == "forbidden"' >/dev/null; then pass "admin: other uid refused by SO_PEERCRED"; else fail "admin: other uid refused by SO_PEERCRED" "$R"; fi
else
	skip "admin: other uid refused by SO_PEERCRED" "needs root and setpriv"
fi

# a cancelled stream frees its slot: the queued ones move up
C0=$(admin GET /admin/stats | jq '.queue.cancelled')
kill $C1
if poll 20 queued_is 1; then pass "killed stream frees its slot (queue 2 -> 1)"; else fail "killed stream frees its slot" "$(admin GET /admin/stats | jq -c '.queue')"; fi
kill $C2
if poll 20 queued_is 0; then pass "second killed stream frees its slot (queue 1 -> 0)"; else fail "second killed stream frees its slot" "$(admin GET /admin/stats | jq -c '.queue')"; fi
kill $C3 $C4
if poll 20 busy_is 0; then pass "all cancelled: no slot leaked"; else fail "all cancelled: no slot leaked" "$(admin GET /admin/stats | jq -c '.slots')"; fi
wait $C1 $C2 $C3 $C4 2>/dev/null
C5=$(admin GET /admin/stats | jq '.queue.cancelled')
if [ "$C5" -ge $((C0 + 4)) ]; then pass "cancellations counted ($C0 -> $C5)"; else fail "cancellations counted" "$C0 -> $C5"; fi
if grep -q '"text_completion"' "$TMP/s1" && ! grep -q '\[DONE\]' "$TMP/s1"; then pass "cancelled stream had started streaming"; else fail "cancelled stream had started streaming" "$(head -c 200 "$TMP/s1")"; fi
# a non-streaming client that gives up
curl -s --max-time 1 "$U/v1/completions" -d '{"prompt":"a","max_tokens":1800,"ignore_eos":true}' >/dev/null
if poll 10 busy_is 0; then pass "abandoned non-stream request frees its slot"; else fail "abandoned non-stream request frees its slot" "$(admin GET /admin/stats | jq -c '.slots')"; fi
req POST /v1/completions '{"prompt":"a","max_tokens":3,"ignore_eos":true}'
expect_code "serves normally afterwards" 200 '.usage.completion_tokens == 3'

# the workers' scheduling class, read back from the kernel by thread id
policy_of() { chrt -p "$1" 2>/dev/null | sed -n 's/.*scheduling policy: SCHED_\([A-Z]*\).*/\1/p'; }
R=$(admin PUT /admin/sched '{"policy":"fifo","priority":1}')
if echo "$R" | jq -e '.sched == "fifo"' >/dev/null; then
	W0=$(echo "$R" | jq '.workers[0].tid') W1=$(echo "$R" | jq '.workers[1].tid')
	if [ "$(policy_of "$W0")" = FIFO ] && [ "$(policy_of "$W1")" = FIFO ] && echo "$R" | jq -e '.previous.sched == "other" and ([.workers[].sched] | unique) == ["fifo"]' >/dev/null; then
		pass "admin: workers SCHED_FIFO (chrt by tid)"; else fail "admin: workers SCHED_FIFO" "$R / $(policy_of "$W0") $(policy_of "$W1")"; fi
	req POST /v1/completions '{"prompt":"a","max_tokens":20,"ignore_eos":true}'
	expect_code "serves with SCHED_FIFO workers" 200 '.usage.completion_tokens == 20'
	R=$(admin PUT /admin/sched '{"policy":"other"}')
	if [ "$(policy_of "$W0")" = OTHER ] && [ "$(policy_of "$W1")" = OTHER ] && echo "$R" | jq -e '.sched == "other" and .previous.sched == "fifo"' >/dev/null; then
		pass "admin: workers back to SCHED_OTHER"; else fail "admin: workers back to SCHED_OTHER" "$R"; fi
elif echo "$R" | jq -e '.error.code == "sched_refused"' >/dev/null; then
	skip "admin: workers SCHED_FIFO" "$(echo "$R" | jq -r '.error.message')"
else
	fail "admin: workers SCHED_FIFO" "$R"
fi
R=$(admin PUT /admin/sched '{"policy":"banana"}')
R2=$(admin PUT /admin/sched '{"policy":"fifo","priority":0}')
if echo "$R" | jq -e '.error.code == "invalid_value"' >/dev/null && echo "$R2" | jq -e '.error.code == "invalid_value"' >/dev/null && [ "$(admin GET /admin/stats | jq -r '.pool.sched')" = other ]; then
	pass "admin: bad scheduling class refused, nothing changed"; else fail "admin: bad scheduling class refused" "$R / $R2"; fi

# SIGTERM: the in-flight stream finishes, then exit 0
curl -sN "$U/v1/completions" -d '{"prompt":"a","max_tokens":60,"ignore_eos":true,"stream":true,"stream_options":{"include_usage":true}}' -o "$TMP/drain" &
CD=$!
poll 10 busy_is 1
stop_server
wait $CD
if [ "$SRC" = 0 ] && grep -q '^data: \[DONE\]' "$TMP/drain" && grep -q '"finish_reason":"length"' "$TMP/drain" && grep -q '"completion_tokens":60' "$TMP/drain"; then
	pass "SIGTERM drains the in-flight stream, exits 0"
else
	fail "SIGTERM drains the in-flight stream, exits 0" "exit $SRC, $(tail -c 300 "$TMP/drain")"
fi
if [ ! -e "$SOCK" ]; then pass "admin socket removed at exit"; else fail "admin socket removed at exit" "still there"; fi

# heap profiling through the admin socket (jemalloc with profiling compiled in)
if [ -n "${SANITIZE:-}" ]; then
	skip "heap profile dump" "sanitizer build has no jemalloc"
else
	export MALLOC_CONF=prof:true,prof_active:false
	start_server prof -m "$M" --admin-socket "$SOCK"
	unset MALLOC_CONF
	wait_health 200
	R=$(admin PUT /admin/heap/profiling '{"active":true}')
	if echo "$R" | jq -e '.error.code == "profiling_disabled"' >/dev/null; then
		skip "heap profile dump" "this jemalloc has no profiling support: $R"
	else
		curl -s "$U/v1/embeddings" -d '{"input":"warm up"}' >/dev/null
		R2=$(admin POST /admin/heap/dump "{\"path\":\"$TMP/heap.prof\"}")
		if echo "$R" | jq -e '.active == true' >/dev/null && echo "$R2" | jq -e '.dumped' >/dev/null && [ -s "$TMP/heap.prof" ]; then
			pass "heap profiling on, prof.dump written"
		else
			fail "heap profiling on, prof.dump written" "$R / $R2"
		fi
		if admin GET /admin/stats | jq -e '.memory.jemalloc.profiling_active == true and .memory.jemalloc.allocated > 0' >/dev/null; then pass "admin stats show jemalloc profiling"; else fail "admin stats show jemalloc profiling" "$(admin GET /admin/stats | jq -c .memory)"; fi
	fi
	stop_server
fi
finish
