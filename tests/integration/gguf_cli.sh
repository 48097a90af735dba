#!/bin/bash
# gguf_cli.sh: 'dify-edge gguf info' on real files, and its refusals: a
# missing file, a directory, an empty file and corrupted or truncated copies
# of a real model must each give one line "dify-edge: FILE: ..." (naming the
# byte offset where the content is at fault) and exit status 2.
. tests/lib.sh

DE=$BIN/dify-edge

# one_line_error NAME FILE WANT_SUBSTRING: gguf info FILE fails with status 2
# and exactly one stderr line "dify-edge: FILE: ...WANT..."
one_line_error() {
	n=$1 f=$2 want=$3
	"$DE" gguf info "$f" >"$TMP/out" 2>"$TMP/err"
	rc=$?
	lines=$(wc -l <"$TMP/err")
	msg=$(head -c 400 "$TMP/err")
	if [ "$rc" -ne 2 ]; then
		fail "$n" "exit $rc, want 2; stderr: $msg"
	elif [ "$lines" -ne 1 ]; then
		fail "$n" "want one stderr line, got $lines: $msg"
	elif ! grep -qF "dify-edge: $f: " "$TMP/err"; then
		fail "$n" "message does not name the file: $msg"
	elif ! grep -qF -- "$want" "$TMP/err"; then
		fail "$n" "message lacks '$want': $msg"
	elif [ -s "$TMP/out" ]; then
		fail "$n" "printed to stdout on error"
	else
		pass "$n"
	fi
}

# usage errors
expect_status "gguf without subcommand exits 2" 2 "$DE" gguf
expect_status "gguf unknown subcommand exits 2" 2 "$DE" gguf frobnicate
expect_status "gguf info without a model exits 2" 2 "$DE" gguf info
expect_status "gguf info unknown option exits 2" 2 "$DE" gguf info --bogus x.gguf
expect_status "gguf --help exits 0" 0 "$DE" gguf --help
if grep -q "usage: dify-edge gguf info" "$TMP/out"; then pass "gguf --help prints usage"; else
	fail "gguf --help prints usage" "$(head -c 200 "$TMP/out")"; fi

# write-random is dispatched to its own command (whatever it answers, it is
# not the gguf usage error)
"$DE" gguf write-random --help >"$TMP/out" 2>"$TMP/err"
if grep -q "unknown subcommand" "$TMP/err"; then
	fail "gguf write-random is dispatched" "$(head -c 200 "$TMP/err")"
else pass "gguf write-random is dispatched"; fi

# file-level refusals
one_line_error "missing file" "$TMP/no-such.gguf" "no such file"
mkdir "$TMP/dir.gguf"
one_line_error "directory" "$TMP/dir.gguf" "is a directory"
: >"$TMP/empty.gguf"
one_line_error "empty file" "$TMP/empty.gguf" "offset 0: empty file"
printf 'not a gguf file at all, just text\n' >"$TMP/text.gguf"
one_line_error "not GGUF" "$TMP/text.gguf" "offset 0: bad magic"

# a file from the project's writer (write-random), then every tenth of it cut off
if "$DE" gguf write-random --arch qwen2 --type q8_0 -o "$TMP/w.gguf" >/dev/null 2>"$TMP/werr"; then
	expect_status "info on a write-random model" 0 "$DE" gguf info "$TMP/w.gguf"
	check "info shows its q8_0 tensors" grep -qE '^  blk\.0\.attn_q\.weight +q8_0 ' "$TMP/out"
	wsize=$(stat -c %s "$TMP/w.gguf")
	for tenth in 1 2 3 4 5 6 7 8 9; do
		head -c $((wsize * tenth / 10)) "$TMP/w.gguf" >"$TMP/w$tenth.gguf"
		one_line_error "write-random model cut at $tenth/10" "$TMP/w$tenth.gguf" "offset "
	done
else
	skip "write-random model" "gguf write-random failed: $(head -c 200 "$TMP/werr")"
fi

if ! have_testdata || [ ! -f "$TESTDATA/stories260K.gguf" ]; then
	skip "gguf info on real files" "testdata absent (TESTDATA=$TESTDATA)"
	finish
fi
M=$TESTDATA/stories260K.gguf

expect_status "info stories260K" 0 "$DE" gguf info "$M"
out=$TMP/out
check "info shows the header" grep -q '^version: *3$' "$out"
check "info shows the architecture" grep -qE '^  general.architecture +str +"llama"$' "$out"
check "info summarizes the token array" grep -qE 'tokenizer.ggml.tokens +arr +\[str x 512\] \["<unk>", "<s>"' "$out"
check "info shows 48 tensors" grep -q '^tensors: 48$' "$out"
check "info lists token_embd.weight with shape and bytes" \
	grep -qE '^  token_embd.weight +f32 +64 x 512 +0 +131072$' "$out"
ntl=$(grep -cE '^  (blk|token_embd|output)' "$out")
if [ "$ntl" -eq 48 ]; then pass "info lists every tensor"; else fail "info lists every tensor" "$ntl lines"; fi

expect_status "info --json" 0 "$DE" gguf info "$M" --json
cp "$TMP/out" "$TMP/json"
if command -v python3 >/dev/null 2>&1; then
	if python3 -c '
import json, sys
d = json.load(open(sys.argv[1]))
assert d["version"] == 3 and len(d["tensors"]) == 48, "counts"
kv = {m["key"]: m for m in d["metadata"]}
t = kv["tokenizer.ggml.tokens"]["value"]
assert t["elem_type"] == "str" and t["n"] == 512 and t["first"][:2] == ["<unk>", "<s>"], t
assert kv["llama.block_count"]["value"] == 5
e = [x for x in d["tensors"] if x["name"] == "token_embd.weight"][0]
assert e["shape"] == [64, 512] and e["bytes"] == 131072 and e["type"] == "f32", e
' "$TMP/json" 2>"$TMP/perr"; then pass "info --json is valid and complete"
	else fail "info --json is valid and complete" "$(tail -c 300 "$TMP/perr")"; fi
else
	skip "info --json is valid and complete" "python3 absent to parse the JSON"
fi

for f in ggml-vocab-llama-spm.gguf ggml-vocab-gpt-2.gguf llama-2-tiny-random.gguf; do
	if [ -f "$TESTDATA/$f" ]; then
		expect_status "info $f" 0 "$DE" gguf info "$TESTDATA/$f"
	else skip "info $f" "absent"; fi
done

# corrupted copies of stories260K.gguf (1185376 bytes; data at 14176)
size=$(stat -c %s "$M")
head -c 1000 "$M" >"$TMP/cut1000.gguf"
one_line_error "truncated in the metadata" "$TMP/cut1000.gguf" "offset "
head -c 14000 "$M" >"$TMP/cut14000.gguf"
one_line_error "truncated in the tensor infos" "$TMP/cut14000.gguf" "truncated"
head -c $((size - 1)) "$M" >"$TMP/cut-1.gguf"
one_line_error "truncated tensor data" "$TMP/cut-1.gguf" "past the end of the file"
head -c 6 "$M" >"$TMP/cut6.gguf"
one_line_error "truncated header" "$TMP/cut6.gguf" "offset 4: truncated: version"

corrupt() { # corrupt NAME OFFSET HEXBYTES: a copy of M with bytes replaced
	cp "$M" "$TMP/$1.gguf"
	printf "$3" | dd of="$TMP/$1.gguf" bs=1 seek="$2" conv=notrunc status=none
}
corrupt magic 0 'GGML'
one_line_error "bad magic" "$TMP/magic.gguf" "offset 0: bad magic"
corrupt v1 4 '\001'
one_line_error "version 1" "$TMP/v1.gguf" "offset 4: GGUF version 1 is not supported"
corrupt count 15 '\177'
one_line_error "tensor count overflow" "$TMP/count.gguf" "offset 8: tensor count"
# the first key's length (offset 24) made huge
corrupt keylen 31 '\100'
one_line_error "key length overflow" "$TMP/keylen.gguf" "offset 24: truncated: key length"
# the first key's first byte made invalid UTF-8
corrupt keyutf8 32 '\377'
one_line_error "key not UTF-8" "$TMP/keyutf8.gguf" "offset 32: key is not valid UTF-8"
# the first value's type (tokens array, at 53) made unknown
corrupt vtype 53 '\077'
one_line_error "unknown value type" "$TMP/vtype.gguf" "offset 53: key 'tokenizer.ggml.tokens': unknown value type 63"
# a tensor's type: find the info of output_norm.weight (1 dim)
off=$(grep -abo 'output_norm.weight' "$M" | head -1 | cut -d: -f1)
corrupt ttype $((off + 18 + 4 + 8)) '\004'
one_line_error "unknown tensor type" "$TMP/ttype.gguf" "unknown tensor type 4"
corrupt tmis $((off + 18 + 4 + 8 + 4)) '\001'
one_line_error "misaligned tensor data" "$TMP/tmis.gguf" "not a multiple of the alignment 32"
corrupt tnul $((off)) 'token_embd.weight\000'
one_line_error "tensor name with NUL" "$TMP/tnul.gguf" "tensor name contains a NUL byte"

finish
