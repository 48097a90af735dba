#!/bin/bash
# server_api.sh: dify-edge serve over real HTTP on 127.0.0.1: every endpoint,
# streaming (SSE) shape, usage counts, the response cache, the API key, the
# rate limiter (429 + headers), and bad input (malformed JSON, wrong types,
# missing fields, 413, prompt longer than the context, invalid UTF-8,
# unknown route/method, header flood, stalled client).
. tests/lib.sh
. tests/integration/server_common.inc

M=$TMP/tiny.gguf
if ! make_model "$M"; then
	fail "write model" "$(cat "$TMP/mkerr")"
	finish
fi

if ! start_server api -m "$M" -P 2 --body-limit 4096 --timeout 2 --alias tiny -n 16; then
	fail "server starts" "$(tail -5 "$LOG")"
	finish
fi
if wait_health 200; then pass "health 200 once loaded"; else fail "health 200 once loaded" "$(cat "$TMP/health")"; fi
req GET /health
expect_code "health fields" 200 '.status == "ok" and .model_loaded == true and .vector_store_ready == true and (.uptime_s|type) == "number" and .slots_idle == 2'

req GET /v1/models
expect_code "models" 200 '.object == "list" and .data[0].id == "tiny" and .data[0].object == "model" and .data[0].meta.n_ctx == 256'

# completions: usage counts match /tokenize, max_tokens respected
req POST /tokenize '{"content":"Hello there","add_special":true}'
expect_code "tokenize" 200 '(.tokens|length) > 0 and (.tokens|all(type == "number"))'
NPROMPT=$(jq '.tokens|length' "$TMP/body")
TOKS=$(jq -c '.tokens' "$TMP/body")
req POST /v1/completions '{"prompt":"Hello there","max_tokens":7,"ignore_eos":true,"temperature":0}'
expect_code "completion" 200 ".object == \"text_completion\" and .choices[0].finish_reason == \"length\" and .usage.completion_tokens == 7 and .usage.prompt_tokens == $NPROMPT and .usage.total_tokens == $((NPROMPT + 7)) and (.choices[0].text|type) == \"string\""
# texts are compared as JSON literals: random weights may generate NUL bytes
GREEDY=$(jq -c '.choices[0].text' "$TMP/body")
req POST /v1/completions '{"prompt":["Hello there"],"max_tokens":7,"ignore_eos":true,"temperature":0}'
expect_code "completion greedy is repeatable" 200 ".choices[0].text == $GREEDY"
req POST /v1/completions '{"prompt":"Hello","max_tokens":12,"ignore_eos":true,"temperature":0.9,"seed":1234}'
S1=$(jq -c '.choices[0].text' "$TMP/body")
req POST /v1/completions '{"prompt":"Hello","max_tokens":12,"ignore_eos":true,"temperature":0.9,"seed":1234}'
expect_code "same seed, same text" 200 ".choices[0].text == $S1"

req POST /detokenize "{\"tokens\":$TOKS}"
expect_code "detokenize round trip" 200 '.content == "Hello there"'
req POST /detokenize '{"tokens":[999999]}'
expect_code "detokenize id outside vocabulary" 400 '.error.code == "invalid_value"'

# chat, non-stream and stream
req POST /v1/chat/completions '{"messages":[{"role":"system","content":"Be brief."},{"role":"user","content":"hi"}],"max_tokens":5,"ignore_eos":true,"temperature":0}'
expect_code "chat" 200 '.object == "chat.completion" and .choices[0].message.role == "assistant" and .usage.completion_tokens == 5 and .choices[0].finish_reason == "length" and (.id|startswith("chatcmpl-"))'
CHAT=$(jq -c '.choices[0].message.content' "$TMP/body")
curl -sN "$U/v1/chat/completions" -d '{"messages":[{"role":"system","content":"Be brief."},{"role":"user","content":"hi"}],"max_tokens":5,"ignore_eos":true,"temperature":0,"stream":true,"stream_options":{"include_usage":true}}' -D "$TMP/shdr" -o "$TMP/sse"
if grep -qi '^content-type: text/event-stream' "$TMP/shdr"; then pass "stream content type"; else fail "stream content type" "$(cat "$TMP/shdr")"; fi
if [ "$(grep -v '^$' "$TMP/sse" | tail -1)" = "data: [DONE]" ]; then pass "stream ends with [DONE]"; else fail "stream ends with [DONE]" "$(tail -3 "$TMP/sse")"; fi
grep '^data: {' "$TMP/sse" | sed 's/^data: //' >"$TMP/chunks"
if [ "$(grep -vc '^data: ' <(grep -v '^$' "$TMP/sse"))" = 0 ] && jq -s -e 'length >= 3' "$TMP/chunks" >/dev/null; then pass "every stream line is a data: event"; else fail "every stream line is a data: event" "$(head -5 "$TMP/sse")"; fi
if jq -s -e '.[0].choices[0].delta.role == "assistant" and ([.[] | select(.choices|length > 0) | .choices[0].finish_reason] | map(select(. != null)) == ["length"]) and (.[-1].usage.completion_tokens == 5) and all(.[]; .object == "chat.completion.chunk")' "$TMP/chunks" >/dev/null; then
	pass "stream chunks: role first, one finish_reason, usage last"
else
	fail "stream chunks: role first, one finish_reason, usage last" "$(head -c 600 "$TMP/chunks")"
fi
SCAT=$(jq -s -c '[.[] | select(.choices|length > 0) | .choices[0].delta.content // ""] | join("")' "$TMP/chunks")
if [ "$SCAT" = "$CHAT" ]; then pass "streamed text equals the non-stream text"; else fail "streamed text equals the non-stream text" "[$SCAT] vs [$CHAT]"; fi
curl -sN "$U/v1/completions" -d '{"prompt":"x","max_tokens":3,"ignore_eos":true,"stream":true}' -o "$TMP/sse2"
if grep -q '"object":"text_completion"' "$TMP/sse2" && [ "$(grep -v '^$' "$TMP/sse2" | tail -1)" = "data: [DONE]" ]; then pass "completion stream"; else fail "completion stream" "$(head -c 300 "$TMP/sse2")"; fi

# embeddings (string and array), L2-normalized, cached
req POST /v1/embeddings '{"input":"hello world"}'
expect_code "embeddings of a string" 200 '.object == "list" and (.data|length) == 1 and (.data[0].embedding|length) == 64 and ((.data[0].embedding|map(.*.)|add) - 1 | fabs) < 0.001 and .usage.prompt_tokens > 0'
H0=$(metric dify_edge_cache_hits_total)
req POST /v1/embeddings '{"input":["a","bb","ccc"]}'
expect_code "embeddings of an array" 200 '(.data|length) == 3 and ([.data[].index] == [0,1,2])'
FIRST=$(jq -c '.data[1].embedding[0:4]' "$TMP/body")
req POST /v1/embeddings '{"input":["a","bb","ccc"]}'
if [ "$(header X-Cache)" = hit ] && [ "$(jq -c '.data[1].embedding[0:4]' "$TMP/body")" = "$FIRST" ]; then pass "second identical request is a cache hit"; else fail "second identical request is a cache hit" "X-Cache: $(header X-Cache)"; fi
H1=$(metric dify_edge_cache_hits_total)
if [ "$H1" -gt "$H0" ] 2>/dev/null; then pass "cache hit counted in /metrics"; else fail "cache hit counted in /metrics" "$H0 -> $H1"; fi

# metrics text
curl -s "$U/metrics" >"$TMP/metrics"
for m in 'dify_edge_http_requests_total{method="POST",route="/v1/completions",status="200"}' dify_edge_prompt_tokens_total \
	dify_edge_generated_tokens_total dify_edge_time_to_first_token_seconds_count dify_edge_inter_token_latency_seconds_bucket \
	dify_edge_queue_length dify_edge_slots_busy dify_edge_threadpool_threads dify_edge_kv_cache_used_tokens \
	dify_edge_cache_misses_total dify_edge_rate_limited_total; do
	if grep -qF "$m" "$TMP/metrics"; then pass "metrics has $m"; else fail "metrics has $m" "missing"; fi
done
if [ -z "${SANITIZE:-}" ]; then
	if grep -q '^dify_edge_jemalloc_resident_bytes [1-9]' "$TMP/metrics"; then pass "metrics has jemalloc stats"; else fail "metrics has jemalloc stats" "missing"; fi
else
	skip "metrics has jemalloc stats" "sanitizer build has no jemalloc"
fi

# bad input
req POST /v1/chat/completions '{"messages":[{"role":"user","content":"hi"}'
expect_code "malformed JSON" 400 '.error.code == "invalid_json" and .error.type == "invalid_request_error" and (.error.message|length) > 0'
req POST /v1/chat/completions '{"messages":"hi"}'
expect_code "wrong type" 400 '.error.code == "invalid_type" and .error.param == "messages"'
req POST /v1/chat/completions '{"model":"x"}'
expect_code "missing messages" 400 '.error.code == "missing_field" and .error.param == "messages"'
req POST /v1/completions '{"prompt":"a","temperature":"hot"}'
expect_code "wrong type of temperature" 400 '.error.param == "temperature"'
req POST /v1/completions "$(printf '{"prompt":"\xff\xfe"}')"
expect_code "invalid UTF-8" 400 '.error.code == "invalid_utf8"'
req POST /v1/completions "{\"prompt\":\"$(head -c 3000 /dev/zero | tr '\0' 'a')$(head -c 2000 /dev/zero | tr '\0' ' ')\"}"
expect_code "body over the limit: 413" 413 '.error.code == "body_too_large"'
head -c 6000 /dev/zero | tr '\0' 'a' >"$TMP/big"
CODE=$(curl -s -o "$TMP/body" -w '%{http_code}' -H 'Transfer-Encoding: chunked' --data-binary @"$TMP/big" "$U/v1/completions")
expect_code "chunked body over the limit: 413" 413 '.error.code == "body_too_large"'
req POST /v1/completions "{\"prompt\":\"$(head -c 1500 /dev/zero | tr '\0' 'z')\"}"
expect_code "prompt longer than the context: 400 naming the limit" 400 '.error.code == "context_length_exceeded" and (.error.message|test("context holds 256"))'
req GET /v1/nothing
expect_code "unknown route: 404" 404 '.error.code == "not_found"'
req DELETE /v1/completions
if [ "$CODE" = 405 ] && [ "$(header Allow)" = POST ]; then pass "wrong method: 405 with Allow"; else fail "wrong method: 405 with Allow" "$CODE $(header Allow)"; fi
req GET /v1/kb/documents/abc
expect_code "bad document id" 400 '.error.code == "invalid_value"'

# header flood: more header bytes than the per-connection memory limit
HF=()
for i in $(seq 1 100); do HF+=(-H "X-Flood-$i: $(head -c 1000 /dev/zero | tr '\0' 'h')"); done
c=$(curl -s -o /dev/null -w '%{http_code}' "${HF[@]}" "$U/health")
case "$c" in 4*|000) pass "header flood refused ($c)" ;; *) fail "header flood refused" "status $c" ;; esac
# a stalled client (half a request line) is closed after --timeout 2
exec 3<>/dev/tcp/127.0.0.1/$PORT
printf 'GET /heal' >&3
t0=$(date +%s)
if timeout 8 cat <&3 >/dev/null; then :; fi
t1=$(date +%s)
exec 3<&- 3>&-
if [ $((t1 - t0)) -le 6 ]; then pass "stalled client closed by the timeout ($((t1 - t0)) s)"; else fail "stalled client closed by the timeout" "$((t1 - t0)) s"; fi
req GET /health
expect_code "still healthy after bad input" 200 '.status == "ok"'

stop_server
if [ "$SRC" = 0 ]; then pass "SIGTERM: exit 0"; else fail "SIGTERM: exit 0" "exit $SRC; $(tail -3 "$LOG")"; fi

# API key and rate limit: bursts of 3 (max_burst 2), 1 per 60 s
if ! start_server auth -m "$M" --api-key sekrit --rate-limit 2:1:60; then
	fail "server with --api-key starts" "$(tail -3 "$LOG")"
	finish
fi
wait_health 200
req GET /health
expect_code "health needs no key" 200
CODE=$(curl -s -o "$TMP/body" -w '%{http_code}' "$U/tokenize" -d '{"content":"a"}')
expect_code "no key: 401" 401 '.error.code == "invalid_api_key"'
CODE=$(curl -s -o "$TMP/body" -w '%{http_code}' -H 'Authorization: Bearer nope' "$U/tokenize" -d '{"content":"a"}')
expect_code "wrong key: 401" 401
rl() { CODE=$(curl -s -D "$TMP/hdr" -o "$TMP/body" -w '%{http_code}' -H 'Authorization: Bearer sekrit' "$U/tokenize" -d '{"content":"a"}'); }
rl
if [ "$CODE" = 200 ] && [ "$(header X-RateLimit-Limit)" = 3 ] && [ "$(header X-RateLimit-Remaining)" = 2 ]; then pass "rate limit headers (limit 3, remaining 2)"; else fail "rate limit headers" "$CODE limit=$(header X-RateLimit-Limit) remaining=$(header X-RateLimit-Remaining)"; fi
rl
rl
if [ "$CODE" = 200 ] && [ "$(header X-RateLimit-Remaining)" = 0 ]; then pass "burst of 3 allowed"; else fail "burst of 3 allowed" "$CODE remaining=$(header X-RateLimit-Remaining)"; fi
rl
RA=$(header Retry-After)
if [ "$CODE" = 429 ] && [ "$RA" -ge 59 ] 2>/dev/null && [ "$RA" -le 60 ] && jq -e '.error.type == "rate_limit_error"' "$TMP/body" >/dev/null; then
	pass "4th request: 429 with Retry-After $RA"
else
	fail "4th request: 429 with Retry-After" "$CODE Retry-After=$RA $(head -c 200 "$TMP/body")"
fi
if [ "$(header X-RateLimit-Reset)" -ge 179 ] 2>/dev/null; then pass "X-RateLimit-Reset counts the whole burst"; else fail "X-RateLimit-Reset counts the whole burst" "$(header X-RateLimit-Reset)"; fi
if [ "$(metric dify_edge_rate_limited_total)" = 1 ]; then pass "rate-limited request counted"; else fail "rate-limited request counted" "$(metric dify_edge_rate_limited_total)"; fi
stop_server

# a real trained model: the server's greedy text equals `dify-edge run`'s,
# stop strings cut the text, chat uses the documented plain fallback
S260=${TESTDATA:-}/stories260K.gguf
if [ -f "$S260" ]; then
	WANT=$("$BIN/dify-edge" run -m "$S260" --prompt "Once upon a time" -n 30 --temp 0 2>/dev/null)
	start_server s260 -m "$S260" -P 1
	wait_health 200
	req POST /v1/completions '{"prompt":"Once upon a time","max_tokens":30,"temperature":0}'
	expect_code "stories260K: greedy text equals dify-edge run" 200 ".choices[0].text == $(jq -n --arg t "$WANT" '$t')"
	req POST /v1/completions '{"prompt":"Once upon a time","max_tokens":30,"temperature":0,"stop":[" Lily"]}'
	expect_code "stories260K: stop string" 200 '.choices[0].text == ", there was a little girl named" and .choices[0].finish_reason == "stop"'
	curl -sN "$U/v1/completions" -d '{"prompt":"Once upon a time","max_tokens":30,"temperature":0,"stop":["park"],"stream":true}' -o "$TMP/sse3"
	ST=$(grep '^data: {' "$TMP/sse3" | sed 's/^data: //' | jq -s -j '[.[].choices[0].text] | join("")')
	if [ "$ST" = ", there was a little girl named Lily. She loved to play outside in the " ]; then pass "stories260K: stop string in a stream"; else fail "stories260K: stop string in a stream" "[$ST]"; fi
	req GET /v1/models
	expect_code "stories260K: no template, plain fallback" 200 '.data[0].meta.chat_template == "plain"'
	req POST /v1/chat/completions '{"messages":[{"role":"user","content":"Tell me a story"}],"max_tokens":20,"temperature":0}'
	expect_code "stories260K: chat answers" 200 '(.choices[0].message.content|length) > 0 and .usage.completion_tokens <= 20'
	stop_server
else
	skip "stories260K checks" "no $S260"
fi

# bad command lines
expect_status "serve without a model: exit 2" 2 "$BIN/dify-edge" serve
expect_status "serve with a missing model: exit 2" 2 "$BIN/dify-edge" serve -m "$TMP/none.gguf"
expect_status "serve with a bad --host: exit 2" 2 "$BIN/dify-edge" serve -m "$M" --host nowhere:x
head -c 100 /dev/urandom >"$TMP/bad.gguf"
expect_status "serve with a corrupt model: exit 2" 2 "$BIN/dify-edge" serve -m "$TMP/bad.gguf" --host 127.0.0.1:0 -q
finish
