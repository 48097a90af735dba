#!/bin/bash
# tests/bench/controller_rt_stream.sh: what real-time workers do to a saturated stream
# (issue 5, 2026-12-06): why the bandwidth policy makes the workers SCHED_FIFO only while
# they run under [bandwidth] realtime_max_busy.
#
# Usage: BUILD=build/<dir> bash tests/bench/controller_rt_stream.sh [ROUNDS]
# One `dify-edge serve -t 2 -P 1` in /edgectl-rtstream/core (cpu hierarchy, v1), whose
# cgroup and parent get cpu.rt_runtime_us 900000 (supervise's realtime_budget 90 %) where
# the kernel has RT group scheduling; no neighbour. Each round streams one 1500-token
# completion (ignore_eos) with: the workers SCHED_OTHER; the workers SCHED_FIFO 1
# (PUT /admin/sched, what supervise does); every core thread SCHED_FIFO 1 (chrt -a); the
# workers FIFO 1 and every other core thread FIFO 2. Prints events received, tokens/s and
# the gaps between streamed events (p50, p99, max). Needs root.
set -u
: "${BUILD:?}"
BIN=$BUILD/bin
ROUNDS=${1:-1}
if [ "$(id -u)" -ne 0 ]; then echo "SKIP: needs root (cgroups, SCHED_FIFO)"; exit 0; fi
CPU=/sys/fs/cgroup/cpu
[ -f $CPU/cpu.shares ] || { echo "SKIP: needs the cpu controller on cgroup v1 at $CPU"; exit 0; }
command -v python3 > /dev/null || { echo "SKIP: needs python3 (the stream reader)"; exit 0; }
CG=$CPU/edgectl-rtstream
T=$(mktemp -d /tmp/rt-stream.XXXXXX)
PORT=$((30000 + $$ % 20000)); SRV=
cleanup() {
	[ -n "$SRV" ] && kill "$SRV" 2>/dev/null && wait "$SRV" 2>/dev/null
	[ -f $CG/core/cpu.rt_runtime_us ] && { echo 0 > $CG/core/cpu.rt_runtime_us; echo 0 > $CG/cpu.rt_runtime_us; } 2>/dev/null
	rmdir $CG/core $CG 2>/dev/null
	rm -rf "$T"
}
trap cleanup EXIT
mkdir -p $CG/core
"$BIN/dify-edge" gguf write-random --arch llama --type q8_0 \
	--dims layers=8,embd=512,ff=1536,heads=8,kv_heads=4,ctx=4096,vocab=4096 -o "$T/m.gguf" > /dev/null || exit 1
[ -f $CG/cpu.rt_runtime_us ] && { echo 900000 > $CG/cpu.rt_runtime_us; echo 900000 > $CG/core/cpu.rt_runtime_us; }
sh -c "echo \$\$ > $CG/core/cgroup.procs; exec $BIN/dify-edge serve --model-path $T/m.gguf --host 127.0.0.1:$PORT -t 2 -P 1 -q --ctx 4096 --admin-socket $T/a.sock" &
SRV=$!
for _ in $(seq 200); do curl -s -m 0.3 http://127.0.0.1:$PORT/health | grep -q '"ok"' && break; sleep 0.05; done
admin() { curl -s --unix-socket "$T/a.sock" -X PUT http://x/admin/sched -d "$1" > /dev/null; }
stream() { # LABEL
	python3 - "$1" "$PORT" <<'PY'
import http.client, json, sys, time
c = http.client.HTTPConnection("127.0.0.1", int(sys.argv[2]), timeout=120)
c.request("POST", "/v1/completions", json.dumps({"prompt": "once", "max_tokens": 1500, "ignore_eos": True, "stream": True}))
ts = [time.monotonic() for line in c.getresponse() if line.startswith(b"data: {")]
g = sorted(b - a for a, b in zip(ts, ts[1:]))
print("| %s | %d | %.0f | %.2f | %.2f | %.1f |" % (sys.argv[1], len(ts), 1500 / (ts[-1] - ts[0]), g[len(g) // 2] * 1e3,
      g[int(len(g) * .99)] * 1e3, g[-1] * 1e3))
PY
}
echo "| workers / other core threads | events (of 1500 tokens) | tokens/s | gap p50 ms | gap p99 ms | max gap ms |"
echo "|---|---|---|---|---|---|"
for _ in $(seq "$ROUNDS"); do
	chrt -a -o -p 0 "$SRV"; admin '{"policy":"other"}'; stream "OTHER / OTHER"
	admin '{"policy":"fifo","priority":1}'; stream "FIFO 1 / OTHER"
	chrt -a -f -p 1 "$SRV"; stream "FIFO 1 / FIFO 1"
	chrt -a -f -p 2 "$SRV"; admin '{"policy":"fifo","priority":1}'; stream "FIFO 1 / FIFO 2"
	chrt -a -o -p 0 "$SRV"; admin '{"policy":"other"}'
done
