#!/bin/bash
# server_kb.sh: the knowledge base over real HTTP: ingest, list, get, query,
# delete, the cache invalidated by a KB change, RAG on chat, restart with
# the KB intact (index rebuilt from SQLite, /health 503 while it builds),
# WAL mode, and SIGKILL during ingestion leaving the database consistent.
. tests/lib.sh
. tests/integration/server_common.inc

M=$TMP/tiny.gguf
KB=$TMP/kb.sqlite
if ! make_model "$M" "layers=2,embd=64,ff=192,heads=4,kv_heads=2,ctx=512,vocab=512"; then
	fail "write model" "$(cat "$TMP/mkerr")"
	finish
fi
if ! start_server kb1 -m "$M" --kb "$KB" --chunk-chars 64 --overlap-chars 8; then
	fail "server starts" "$(tail -5 "$LOG")"
	finish
fi
wait_health 200
TA="Cats purr and sleep in the sun all afternoon. Cats chase mice around the old barn at night and then they sleep again."
TB="Rockets burn liquid fuel to climb to orbit. Engineers test every engine on the ground before a launch day."
req POST /v1/kb/documents "{\"name\":\"cats\",\"text\":\"$TA\"}"
expect_code "ingest document A" 200 '.id == 1 and .object == "kb.document" and .n_chunks >= 2'
req POST /v1/kb/documents "{\"name\":\"rockets\",\"text\":\"$TB\",\"chunk_chars\":200}"
expect_code "ingest document B (own chunk size)" 200 '.id == 2 and .n_chunks == 1'
req GET /v1/kb/documents
expect_code "list documents" 200 '.object == "list" and ([.data[].name] == ["cats","rockets"])'
req GET /v1/kb/documents/2
expect_code "get a document" 200 ".name == \"rockets\" and .text == \"$TB\""
req GET /v1/kb/documents/99
expect_code "missing document: 404" 404 '.error.code == "not_found"'
req POST /v1/kb/query "{\"query\":\"$TB\",\"top_k\":3}"
expect_code "query: the document's own text ranks it first" 200 '(.data|length) == 3 and .data[0].document_id == 2 and .data[0].score > 0.99 and .data[0].score >= .data[1].score'
req POST /v1/kb/query "{\"query\":\"$TB\",\"top_k\":3}"
if [ "$(header X-Cache)" = hit ]; then pass "repeated query is a cache hit"; else fail "repeated query is a cache hit" "X-Cache: $(header X-Cache)"; fi
req POST /v1/kb/query '{"query":""}'
expect_code "empty query: 400" 400 '.error.param == "query"'
req POST /v1/kb/documents '{"name":"x"}'
expect_code "document without text: 400" 400 '.error.param == "text"'

# RAG: the chat prompt grows by the retrieved context, which is returned
req POST /v1/chat/completions '{"messages":[{"role":"user","content":"What do rockets burn?"}],"max_tokens":2,"ignore_eos":true}'
P0=$(jq '.usage.prompt_tokens' "$TMP/body")
req POST /v1/chat/completions '{"messages":[{"role":"user","content":"What do rockets burn?"}],"max_tokens":2,"ignore_eos":true,"kb":{"top_k":2}}'
expect_code "RAG chat returns its context" 200 "(.kb_context|length) == 2 and .usage.prompt_tokens > $P0 + 20"
curl -sN "$U/v1/chat/completions" -d '{"messages":[{"role":"user","content":"rockets"}],"max_tokens":2,"kb":true,"stream":true}' -o "$TMP/sse"
if head -1 "$TMP/sse" | sed 's/^data: //' | jq -e '(.kb_context|length) >= 1' >/dev/null; then pass "RAG stream carries the context in its first chunk"; else fail "RAG stream context" "$(head -c 300 "$TMP/sse")"; fi

# a KB change invalidates cached queries
req POST /v1/kb/documents '{"name":"ships","text":"Ships sail across the sea carrying containers between ports."}'
expect_code "ingest document C" 200 '.id == 3'
req POST /v1/kb/query "{\"query\":\"$TB\",\"top_k\":3}"
if [ "$(header X-Cache)" = miss ]; then pass "cache invalidated by the KB change"; else fail "cache invalidated by the KB change" "X-Cache: $(header X-Cache)"; fi
req DELETE /v1/kb/documents/1
expect_code "delete document A" 200 '.deleted == true and .id == 1'
req POST /v1/kb/query "{\"query\":\"$TA\",\"top_k\":10}"
expect_code "deleted document never returned" 200 '(.data|length) >= 1 and all(.data[]; .document_id != 1)'
stop_server

JM=$(sqlite3 "$KB" 'PRAGMA journal_mode')
if [ "$JM" = wal ]; then pass "KB in WAL mode"; else fail "KB in WAL mode" "$JM"; fi

# restart: documents intact, index rebuilt
start_server kb2 -m "$M" --kb "$KB" --body-limit 8388608
wait_health 200
req GET /v1/kb/documents
expect_code "restart: documents intact" 200 '([.data[].id] == [2,3])'
req POST /v1/kb/query "{\"query\":\"$TB\",\"top_k\":1}"
expect_code "restart: index rebuilt from SQLite" 200 '.data[0].document_id == 2 and .data[0].score > 0.99'
if grep -q 'knowledge base .*: 2 documents' "$LOG"; then pass "restart: log reports the KB"; else fail "restart: log reports the KB" "$(grep 'knowledge base' "$LOG")"; fi

# SIGKILL in the middle of a long ingestion: ~39000 chunks to embed (seconds
# of work on any machine), killed 0.2 s after its slot is seen busy
BIG=$TMP/big.json
awk 'BEGIN { printf "{\"name\":\"big\",\"chunk_chars\":32,\"overlap_chars\":0,\"text\":\"";
	for (i = 1; i <= 30000; i++) printf "sentence %d about nothing in particular. ", i; printf "\"}" }' >"$BIG"
curl -s --max-time 120 "$U/v1/kb/documents" -H 'Content-Type: application/json' --data-binary @"$BIG" -o "$TMP/bigout" -w '%{http_code} %{time_total}' >"$TMP/bigcode" 2>/dev/null &
CB=$!
busy() { curl -s "$U/health" | jq -e '.slots_processing == 1' >/dev/null; }
for _ in $(seq 1 200); do busy && break; sleep 0.02; done
sleep 0.2
kill -9 $SPID
wait $SPID 2>/dev/null
SPID=
wait $CB
read -r BIGCODE BIGTIME <"$TMP/bigcode"
if [ "$BIGCODE" != 200 ]; then pass "killed while ingesting (no reply)"; else fail "killed while ingesting" "the ingestion finished before the kill, in $BIGTIME s: $(head -c 200 "$TMP/bigout")"; fi
IC=$(sqlite3 "$KB" 'PRAGMA integrity_check')
if [ "$IC" = ok ]; then pass "after SIGKILL: integrity_check ok"; else fail "after SIGKILL: integrity_check ok" "$IC"; fi
BAD=$(sqlite3 "$KB" 'SELECT count(*) FROM documents d WHERE n_chunks != (SELECT count(*) FROM chunks c WHERE c.doc_id = d.id)')
ORPH=$(sqlite3 "$KB" 'SELECT count(*) FROM chunks WHERE doc_id NOT IN (SELECT id FROM documents)')
ND=$(sqlite3 "$KB" 'SELECT count(*) FROM documents')
if [ "$BAD" = 0 ] && [ "$ORPH" = 0 ] && [ "$ND" = 2 ]; then pass "after SIGKILL: committed documents kept, no partial one"; else fail "after SIGKILL: consistent" "docs $ND, mismatched $BAD, orphan chunks $ORPH"; fi

# a bigger committed KB and an expensive index: /health says 503 while it builds
start_server kb3 -m "$M" --kb "$KB"
wait_health 200
{ printf '{"name":"many","chunk_chars":32,"overlap_chars":0,"text":"'; for i in $(seq 1 4000); do printf 'line %d of the many chunks. ' "$i"; done; printf '"}'; } >"$BIG"
CODE=$(curl -s --max-time 120 "$U/v1/kb/documents" -H 'Content-Type: application/json' --data-binary @"$BIG" -o "$TMP/body" -w '%{http_code}')
expect_code "ingest a document of many chunks" 200 '.n_chunks > 500'
NCH=$(jq '.n_chunks' "$TMP/body")
stop_server
start_server kb4 -m "$M" --kb "$KB" --hnsw-m 64 --ef-construction 4000
SEEN=
for _ in $(seq 1 400); do
	c=$(curl -s -o "$TMP/h" -w '%{http_code}' "$U/health")
	if [ "$c" = 503 ] && jq -e '.vector_store_ready == false and .status == "loading"' "$TMP/h" >/dev/null; then SEEN=1; fi
	[ "$c" = 200 ] && break
	sleep 0.02
done
if [ -n "$SEEN" ]; then pass "health 503 while the index builds"; else skip "health 503 while the index builds" "the index of $NCH chunks was built before the first poll"; fi
if [ "$c" = 200 ]; then pass "health 200 once the index is built"; else fail "health 200 once the index is built" "$c"; fi
req GET /v1/kb/documents
expect_code "all committed documents there" 200 '([.data[].name] == ["rockets","ships","many"])'
stop_server
finish
