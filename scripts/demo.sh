#!/bin/sh
# scripts/demo.sh: the `make demo` job. Writes a small llama model with random
# weights and a synthetic SentencePiece vocabulary with the project's own GGUF
# writer (dify-edge gguf write-random) into $BUILD/demo/, then generates text
# from it with dify-edge run. Random weights give random text: the point is
# that the whole path (writer, mmap loader, tokenizer, kernels, thread pool,
# sampler) runs end to end. Real models come with --model.
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
