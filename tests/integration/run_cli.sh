#!/bin/bash
# run_cli.sh: 'dify-edge run', 'dify-edge bench' and 'dify-edge gguf
# write-random' driven as a user would: the stories260K golden ids, random
# models of both architectures and every weight type, seeded sampling,
# stop strings, and every kind of bad input (one-line error, exit status 2).
. tests/lib.sh

DE=$BIN/dify-edge

# expect_err NAME STATUS PATTERN CMD...: exit STATUS, exactly one stderr line
# matching PATTERN (grep -E), nothing on stdout
expect_err() {
	n=$1; want=$2; pat=$3; shift 3
	"$@" >"$TMP/out" 2>"$TMP/err"; got=$?
	lines=$(wc -l <"$TMP/err")
	if [ "$got" -ne "$want" ]; then
		fail "$n" "exit $got, want $want; stderr: $(head -c 300 "$TMP/err")"
	elif [ "$lines" -ne 1 ]; then
		fail "$n" "want one stderr line, got $lines: $(head -c 300 "$TMP/err")"
	elif ! grep -Eq -- "$pat" "$TMP/err"; then
		fail "$n" "stderr does not match '$pat': $(cat "$TMP/err")"
	elif [ -s "$TMP/out" ]; then
		fail "$n" "unexpected stdout: $(head -c 100 "$TMP/out")"
	else
		pass "$n"
	fi
}

# ---- stories260K golden ids (a real trained model)
if have_testdata && [ -f "$TESTDATA/stories260K.gguf" ]; then
	want=$(sed -n 's/^ids: //p' "$TESTDATA/stories260K.greedy200.txt")
	for t in 1 2; do
		got=$("$DE" run --model "$TESTDATA/stories260K.gguf" --prompt '' -n 200 --temp 0 --ids --threads $t)
		if [ "$got" = "$want" ]; then pass "stories260K greedy 200 ids, $t thread(s)"
		else fail "stories260K greedy 200 ids, $t thread(s)" "got: $(echo "$got" | head -c 120)..."; fi
	done
	txt=$("$DE" run --model "$TESTDATA/stories260K.gguf" --prompt '' -n 40 --temp 0)
	case "$txt" in
	"Once upon a time, there was a little girl named Lily."*) pass "stories260K greedy text" ;;
	*) fail "stories260K greedy text" "got: $txt" ;;
	esac
	txt=$("$DE" run --model "$TESTDATA/stories260K.gguf" --prompt '' -n 100 --temp 0 --stop 'girl')
	if [ "$txt" = "Once upon a time, there was a little " ]; then pass "stop string"
	else fail "stop string" "got: '$txt'"; fi
	# a prompt continues where it ends (leading-space rule kept)
	txt=$("$DE" run --model "$TESTDATA/stories260K.gguf" --prompt 'Once upon a time' -n 8 --temp 0)
	case "$txt" in
	", there was a little girl"*) pass "prompt continuation" ;;
	*) fail "prompt continuation" "got: '$txt'" ;;
	esac
	a=$("$DE" run --model "$TESTDATA/stories260K.gguf" --prompt 'Lily' -n 50 --seed 11 --temp 1)
	b=$("$DE" run --model "$TESTDATA/stories260K.gguf" --prompt 'Lily' -n 50 --seed 11 --temp 1 -t 2)
	c=$("$DE" run --model "$TESTDATA/stories260K.gguf" --prompt 'Lily' -n 50 --seed 12 --temp 1)
	if [ "$a" = "$b" ] && [ "$a" != "$c" ]; then pass "seeded sampling is reproducible"
	else fail "seeded sampling is reproducible" "seed 11: '$a' / '$b', seed 12: '$c'"; fi
	expect_err "prompt longer than the context" 2 "prompt of [0-9]+ tokens does not fit the context of 8" \
		"$DE" run --model "$TESTDATA/stories260K.gguf" --ctx 8 --prompt 'Once upon a time there was a little girl named Lily' -n 4
else
	skip "stories260K" "testdata not found (TESTDATA=$TESTDATA)"
fi

if have_testdata && [ -f "$TESTDATA/llama-2-tiny-random.gguf" ]; then
	check "llama-2-tiny-random.gguf (F16) runs" "$DE" run --model "$TESTDATA/llama-2-tiny-random.gguf" --prompt 'Hello' -n 8 --temp 0 --ids
else
	skip "llama-2-tiny-random" "testdata not found"
fi

# ---- random models: both architectures, every type
for arch in llama qwen2; do
	for type in f32 f16 q8_0 q4_0; do
		f=$TMP/$arch-$type.gguf
		if "$DE" gguf write-random --arch $arch --type $type \
			--dims layers=2,embd=64,ff=128,heads=4,kv_heads=2,ctx=128,vocab=600 --seed 3 -o "$f" 2>"$TMP/err"; then
			ids=$("$DE" run --model "$f" --prompt 'hello world' -n 16 --temp 0 --ids 2>"$TMP/err")
			nids=$(echo "$ids" | wc -w)
			again=$("$DE" run --model "$f" --prompt 'hello world' -n 16 --temp 0 --ids -t 2 2>/dev/null)
			if [ "$nids" -eq 16 ] && [ "$ids" = "$again" ]; then pass "random $arch $type: 16 greedy ids, same at 2 threads"
			else fail "random $arch $type" "ids '$ids' / '$again': $(cat "$TMP/err")"; fi
		else
			fail "write-random $arch $type" "$(cat "$TMP/err")"
		fi
	done
done
f=$TMP/llama-q8_0.gguf
# same seed, same bytes
"$DE" gguf write-random --arch llama --type q8_0 --dims layers=2,embd=64,ff=128,heads=4,kv_heads=2,ctx=128,vocab=600 --seed 3 -o "$TMP/again.gguf"
check "write-random is deterministic" cmp -s "$f" "$TMP/again.gguf"
out=$("$DE" run --model "$f" --prompt 'the cat' -n 12 --seed 1)
if [ -n "$out" ]; then pass "run prints a completion"; else fail "run prints a completion" "empty"; fi

# ---- bad input: one line, exit 2
expect_err "missing model file" 2 "nonexistent.gguf: No such file" "$DE" run --model "$TMP/nonexistent.gguf" -n 4
expect_err "model is a directory" 2 "is a directory" "$DE" run --model "$TMP" -n 4
head -c 3000 "$f" >"$TMP/trunc.gguf"
expect_err "truncated GGUF" 2 "trunc.gguf" "$DE" run --model "$TMP/trunc.gguf" -n 4
cp "$f" "$TMP/badmagic.gguf"; printf 'XXXX' | dd of="$TMP/badmagic.gguf" conv=notrunc 2>/dev/null
expect_err "corrupted GGUF (magic)" 2 "badmagic.gguf" "$DE" run --model "$TMP/badmagic.gguf" -n 4
"$DE" gguf write-random --arch llama --type q8_0 --arch-name gpt2 -o "$TMP/gpt2.gguf"
expect_err "unsupported architecture" 2 "unsupported architecture 'gpt2'" "$DE" run --model "$TMP/gpt2.gguf" -n 4
"$DE" gguf write-random --arch llama --type q8_0 --dims embd=256,ff=256 --tensor-type blk.0.attn_q.weight=q4_K -o "$TMP/q4k.gguf"
expect_err "unsupported tensor type" 2 "unsupported tensor type q4_K for blk.0.attn_q.weight" "$DE" run --model "$TMP/q4k.gguf" -n 4
expect_err "no --model" 2 "model is required" "$DE" run -n 4
expect_err "unknown option" 2 "." "$DE" run --model "$f" --bogus
expect_err "bad -n" 2 "bad -n" "$DE" run --model "$f" -n abc
expect_err "write-random: bad type" 2 "unsupported --type 'q4_K'" "$DE" gguf write-random --arch llama --type q4_K -o "$TMP/x.gguf"
expect_err "write-random: bad dims" 2 "multiples of 32" "$DE" gguf write-random --arch llama --type q4_0 --dims ff=100 -o "$TMP/x.gguf"
expect_err "write-random: bad arch" 2 "unknown --arch" "$DE" gguf write-random --arch gpt2 --type q4_0 -o "$TMP/x.gguf"
expect_err "bench: missing model" 2 "No such file" "$DE" bench --model "$TMP/nonexistent.gguf"
expect_status "run --help" 0 "$DE" run --help
expect_status "bench --help" 0 "$DE" bench --help

# ---- bench
if "$DE" bench --model "$f" -t 1,2 -p 16 -n 8 -r 2 >"$TMP/bench" 2>"$TMP/err" &&
	grep -Eq '\| +pp16 +\| +[0-9.]+ ± [0-9.]+' "$TMP/bench" && grep -Eq '\| +tg8 +\|' "$TMP/bench" &&
	[ "$(grep -c 'pp16' "$TMP/bench")" -eq 2 ]; then
	pass "bench prints pp and tg rows per thread count"
else
	fail "bench" "$(cat "$TMP/bench" "$TMP/err" | head -c 600)"
fi

finish
