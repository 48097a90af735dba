#!/bin/sh
# scripts/demo.sh: the `make demo` job. Writes a small llama model with random
# weights and a synthetic SentencePiece vocabulary with the project's own GGUF
# writer (dify-edge gguf write-random) into $BUILD/demo/, then generates text
# from it with dify-edge run. Random weights give random text: the point is
# that the whole path (writer, mmap loader, tokenizer, kernels, thread pool,
# sampler) runs end to end. Real models come with --model.
#
# Then it starts `dify-edge serve` on that model (loopback, a free port, an
# admin socket), sends an OpenAI chat request and a streamed completion,
# reads /health, /metrics and the admin stats, and stops the server with
# SIGTERM (it drains and exits 0).
#
# Env: BUILD (build dir, default build/$(uname -m)), DEMO_MODEL (use this GGUF
# instead), DEMO_PROMPT, DEMO_TOKENS.
set -eu
BUILD=${BUILD:-build/$(uname -m | sed -e 's/aarch64/arm64/' -e 's/amd64/x86_64/')}
DE=$BUILD/bin/dify-edge
PROMPT=${DEMO_PROMPT:-Once upon a time}
N=${DEMO_TOKENS:-48}
[ -x "$DE" ] || { echo "demo: $DE not built (run make)" >&2; exit 1; }
mkdir -p "$BUILD/demo"
model=${DEMO_MODEL:-$BUILD/demo/tiny-llama-q8_0.gguf}
if [ -z "${DEMO_MODEL:-}" ]; then
	echo "demo: writing $model (llama, q8_0, 4 layers, width 128, GQA 4/2, vocab 2048, random weights)"
	"$DE" gguf write-random --arch llama --type q8_0 \
		--dims layers=4,embd=128,ff=384,heads=4,kv_heads=2,ctx=512,vocab=2048 --seed 42 -o "$model"
fi
echo "demo: dify-edge run --model $model --prompt '$PROMPT' -n $N --temp 0.8 --seed 1 -v"
echo "----"
printf '%s' "$PROMPT"
"$DE" run --model "$model" --prompt "$PROMPT" -n "$N" --temp 0.8 --seed 1 -v
echo "----"
echo "demo: greedy token ids of the same prompt:"
"$DE" run --model "$model" --prompt "$PROMPT" -n 16 --temp 0 --ids

echo
echo "demo: dify-edge serve --model-path $model --host 127.0.0.1:0 -P 2 --admin-socket $BUILD/demo/admin.sock"
log=$BUILD/demo/serve.log
"$DE" serve --model-path "$model" --host 127.0.0.1:0 -P 2 --admin-socket "$BUILD/demo/admin.sock" >"$log" 2>&1 &
pid=$!
trap 'kill -TERM $pid 2>/dev/null' EXIT
port=""
for _ in $(seq 100); do
	port=$(sed -n 's/.*listening on 127\.0\.0\.1:\([0-9]*\).*/\1/p' "$log")
	[ -n "$port" ] && break
	kill -0 $pid 2>/dev/null || { echo "demo: server exited:" >&2; cat "$log" >&2; exit 1; }
	sleep 0.1
done
[ -n "$port" ] || { echo "demo: server did not start" >&2; cat "$log" >&2; exit 1; }
url=http://127.0.0.1:$port
for _ in $(seq 100); do curl -sf "$url/health" >/dev/null && break; sleep 0.1; done
echo "demo: GET /health"
curl -s "$url/health"; echo
echo "demo: POST /v1/chat/completions"
curl -s "$url/v1/chat/completions" -H 'Content-Type: application/json' \
	-d '{"messages":[{"role":"user","content":"Tell me a story."}],"max_tokens":24,"seed":1}'
echo
echo "demo: POST /v1/completions with stream: true (server-sent events)"
curl -sN "$url/v1/completions" -H 'Content-Type: application/json' \
	-d '{"prompt":"Once upon a time","max_tokens":8,"temperature":0,"stream":true}'
echo "demo: GET /metrics (excerpt)"
curl -s "$url/metrics" | grep -E '^dify_edge_(http_requests_total|prompt_tokens_total|generated_tokens_total|threadpool_threads|jemalloc_resident_bytes|time_to_first_token_seconds_count)' | head -10
echo "demo: admin socket: GET /admin/stats"
curl -s --unix-socket "$BUILD/demo/admin.sock" http://localhost/admin/stats | head -c 600; echo
kill -TERM $pid
trap - EXIT
if wait $pid; then echo "demo: server drained and exited 0"; else echo "demo: server exit status $?" >&2; exit 1; fi
