#!/bin/bash
# tokenize_cli.sh: 'dify-edge tokenize' through the real binary.
#
# Every case of llama.cpp's ggml-vocab-llama-spm and ggml-vocab-gpt-2 test
# vectors is fed on stdin byte for byte (the .inp file is cut at its
# "\n__ggml_vocab_test__\n" separators with awk in the C locale, so trailing
# newlines and spaces stay) and the printed ids must equal the .out line.
# Then stories260K, the flags, and bad input: no --model, a missing file, a
# directory, a GGUF without a tokenizer, invalid UTF-8 for a BPE vocabulary
# (each one line on stderr and exit status 2).
. tests/lib.sh

DE=$BIN/dify-edge

check_vectors() {
	name=$1
	model=$TESTDATA/$name
	if [ ! -r "$model" ] || [ ! -r "$model.inp" ] || [ ! -r "$model.out" ]; then
		skip "vectors $name" "$model(.inp/.out) absent"
		return
	fi
	dir=$TMP/$name
	mkdir -p "$dir"
	LC_ALL=C awk -v dir="$dir" 'BEGIN { RS = "\n__ggml_vocab_test__\n" }
		{ f = sprintf("%s/in.%03d", dir, NR); printf "%s", $0 > f; close(f) }' "$model.inp"
	n_in=$(ls "$dir" | wc -l)
	n_out=$(wc -l < "$model.out")
	if [ "$n_in" -ne "$n_out" ] || [ "$n_in" -lt 40 ]; then
		fail "vectors $name" "$n_in inputs but $n_out expected lines"
		return
	fi
	i=0 bad=0
	while IFS= read -r want; do
		i=$((i + 1))
		in=$(printf '%s/in.%03d' "$dir" "$i")
		got=$("$DE" tokenize --model "$model" < "$in" 2>"$TMP/err")
		rc=$?
		want=${want# }
		if [ "$rc" -ne 0 ] || [ "$got" != "$want" ]; then
			bad=$((bad + 1))
			echo "  case $i ($(wc -c < "$in") bytes): exit $rc, got '$got' want '$want' $(head -c 200 "$TMP/err")"
		fi
	done < "$model.out"
	if [ "$bad" -eq 0 ]; then
		pass "vectors $name: all $i cases"
	else
		fail "vectors $name" "$bad of $i cases differ"
	fi
}

if ! have_testdata; then
	skip "vectors" "TESTDATA ($TESTDATA) absent"
else
	check_vectors ggml-vocab-llama-spm.gguf
	check_vectors ggml-vocab-gpt-2.gguf
fi

# stories260K: "Once upon a time" is what the model generates first
S=$TESTDATA/stories260K.gguf
if have_testdata && [ -r "$S" ]; then
	got=$(printf 'Once upon a time' | "$DE" tokenize --model "$S")
	if [ "$got" = "403 407 261 378" ]; then pass "stories260K Once upon a time"
	else fail "stories260K Once upon a time" "got '$got'"; fi
	got=$(printf 'Once upon a time' | "$DE" tokenize -m "$S" --bos)
	if [ "$got" = "1 403 407 261 378" ]; then pass "--bos"
	else fail "--bos" "got '$got'"; fi
	got=$(printf 'a</s>' | "$DE" tokenize -m "$S" --special)
	case "$got" in *" 2") pass "--special matches </s>" ;; *) fail "--special" "got '$got'" ;; esac
	got=$(printf 'a</s>' | "$DE" tokenize -m "$S")
	case "$got" in *" 2") fail "no --special" "</s> became id 2: '$got'" ;; *) pass "no --special: </s> is text" ;; esac
	got=$(printf '' | "$DE" tokenize -m "$S")
	if [ -z "$got" ]; then pass "empty input: empty line"; else fail "empty input" "got '$got'"; fi
	got=$(printf 'Once' | "$DE" tokenize -m "$S" --pieces)
	if [ "$got" = "$(printf '403\t\xe2\x96\x81Once')" ]; then pass "--pieces"
	else fail "--pieces" "got '$got'"; fi
	# SPM takes any bytes: 0xff falls back to the byte token <0xFF> (id 258)
	got=$(printf '\377' | "$DE" tokenize -m "$S")
	case "$got" in *" 258") pass "SPM byte fallback for invalid UTF-8" ;;
	*) fail "SPM byte fallback" "got '$got'" ;; esac
else
	skip "stories260K" "$S absent"
fi

G=$TESTDATA/ggml-vocab-gpt-2.gguf
if have_testdata && [ -r "$G" ]; then
	expect_status "BPE refuses invalid UTF-8" 2 sh -c "printf 'ok\\377' | '$DE' tokenize -m '$G'"
	if [ "$(wc -l < "$TMP/err")" -eq 1 ] && grep -q 'not valid UTF-8' "$TMP/err"; then
		pass "invalid UTF-8: one-line error"
	else
		fail "invalid UTF-8 message" "$(cat "$TMP/err")"
	fi
	got=$(printf 'a<|endoftext|>' | "$DE" tokenize -m "$G" --special)
	if [ "$got" = "64 50256" ]; then pass "gpt-2 --special <|endoftext|>"; else fail "gpt-2 --special" "got '$got'"; fi
else
	skip "gpt-2 errors" "$G absent"
fi

expect_status "--help" 0 "$DE" tokenize --help
grep -q 'usage: dify-edge tokenize' "$TMP/out" && pass "--help prints usage" || fail "--help" "no usage"
expect_status "no --model" 2 "$DE" tokenize
expect_status "missing model file" 2 "$DE" tokenize --model "$TMP/nope.gguf"
grep -q "nope.gguf" "$TMP/err" && pass "missing file named" || fail "missing file named" "$(cat "$TMP/err")"
expect_status "model is a directory" 2 "$DE" tokenize --model "$TMP"
expect_status "unknown option" 2 "$DE" tokenize --frobnicate
printf 'GGUF' > "$TMP/trunc.gguf"
expect_status "truncated GGUF" 2 "$DE" tokenize --model "$TMP/trunc.gguf"

# A minimal valid GGUF v3 with no metadata and no tensors: magic, version,
# tensor count 0, kv count 0.
printf 'GGUF\003\000\000\000\000\000\000\000\000\000\000\000\000\000\000\000\000\000\000\000' > "$TMP/empty.gguf"
expect_status "GGUF without a tokenizer" 2 "$DE" tokenize --model "$TMP/empty.gguf" < /dev/null
if grep -q 'no tokenizer' "$TMP/err" && [ "$(wc -l < "$TMP/err")" -eq 1 ]; then
	pass "no tokenizer: one-line error"
else
	fail "no tokenizer message" "$(cat "$TMP/err")"
fi

finish
