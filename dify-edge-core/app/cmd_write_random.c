/*
 * cmd_write_random.c: 'dify-edge gguf write-random': write a llama or qwen2
 * model with random weights and a synthetic SentencePiece vocabulary (the
 * demo, the tests and the benchmarks use it; see model_random.h).
 *
 *   dify-edge gguf write-random --arch llama|qwen2 --type f32|f16|q8_0|q4_0
 *       [--dims SPEC] [--vocab N] [--seed S] -o FILE
 *
 * SPEC is a preset (tiny, qwen2-0.5b) and/or key=value pairs separated by
 * commas: layers, embd, ff, heads, kv_heads, ctx, vocab, tied (0/1), e.g.
 * "layers=2,embd=64,ff=192,heads=4,kv_heads=2,ctx=256,vocab=512".
 * Testing options: --arch-name NAME writes general.architecture NAME;
 * --tensor-type NAME=TYPE stores one tensor in another type (random bytes
 * for types the kernels cannot produce, e.g. q4_K).
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dify-edge-core/app/cmds.h"
#include "dify-edge-core/runtime/model_random.h"

/* getopt_long failed on argv[optind - 1]: an unknown option or a missing value */
static void bad_option(const char *cmd, char **argv)
{
	fprintf(stderr, "dify-edge: %s: unknown option or missing value: '%s' (see --help)\n", cmd,
		optind > 0 ? argv[optind - 1] : "?");
}

static void usage(FILE *f)
{
	fprintf(f,
		"usage: dify-edge gguf write-random --arch llama|qwen2 --type f32|f16|q8_0|q4_0\n"
		"           [--dims SPEC] [--vocab N] [--seed S] -o FILE\n"
		"\n"
		"Write a model with random weights and a synthetic SentencePiece vocabulary.\n"
		"SPEC: a preset (tiny, qwen2-0.5b) and/or comma-separated key=value pairs:\n"
		"  layers, embd, ff, heads, kv_heads, ctx, vocab, tied (0/1)\n"
		"  default: tiny = layers=2,embd=64,ff=192,heads=4,kv_heads=2,ctx=256,vocab=512,tied=0\n"
		"  embd and ff must be multiples of the type's block (32 for q8_0/q4_0).\n"
		"Testing options: --arch-name NAME (write another architecture name),\n"
		"  --tensor-type NAME=TYPE (store one tensor in another type; repeatable)\n"
		"\n"
		"examples:\n"
		"  dify-edge gguf write-random --arch llama --type q8_0 -o tiny.gguf\n"
		"  dify-edge gguf write-random --arch qwen2 --type q4_0 --dims qwen2-0.5b -o q.gguf\n");
}

int cmd_gguf_write_random(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "arch", required_argument, NULL, 'a' },
		{ "type", required_argument, NULL, 'T' },
		{ "dims", required_argument, NULL, 'd' },
		{ "vocab", required_argument, NULL, 'v' },
		{ "seed", required_argument, NULL, 's' },
		{ "output", required_argument, NULL, 'o' },
		{ "arch-name", required_argument, NULL, 'A' },
		{ "tensor-type", required_argument, NULL, 'X' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	struct model_random_spec spec;
	const char *out = NULL, *vocab = NULL;
	bool have_arch = false, have_type = false;
	char err[512];
	char *end;
	int c, rc;

	model_random_defaults(&spec);
	optind = 1;
	opterr = 0; /* one line of our own instead of getopt's */
	while ((c = getopt_long(argc, argv, "o:h", opts, NULL)) != -1) {
		switch (c) {
		case 'a':
			if (!strcmp(optarg, "llama"))
				spec.arch = MODEL_ARCH_LLAMA;
			else if (!strcmp(optarg, "qwen2"))
				spec.arch = MODEL_ARCH_QWEN2;
			else {
				fprintf(stderr, "dify-edge: write-random: unknown --arch '%s' (llama, qwen2)\n", optarg);
				return 2;
			}
			have_arch = true;
			break;
		case 'T':
			if (model_random_parse_type(optarg, &spec.type) < 0 ||
			    (spec.type != GGML_TYPE_F32 && spec.type != GGML_TYPE_F16 &&
			     spec.type != GGML_TYPE_Q8_0 && spec.type != GGML_TYPE_Q4_0)) {
				fprintf(stderr, "dify-edge: write-random: unsupported --type '%s' (f32, f16, q8_0, q4_0)\n", optarg);
				return 2;
			}
			have_type = true;
			break;
		case 'd':
			if (model_random_parse_dims(&spec, optarg, err, sizeof(err)) < 0) {
				fprintf(stderr, "dify-edge: write-random: %s\n", err);
				return 2;
			}
			break;
		case 'v':
			vocab = optarg;
			break;
		case 's':
			errno = 0;
			spec.seed = strtoull(optarg, &end, 0);
			if (errno || end == optarg || *end) {
				fprintf(stderr, "dify-edge: write-random: bad --seed '%s'\n", optarg);
				return 2;
			}
			break;
		case 'o':
			out = optarg;
			break;
		case 'A':
			spec.arch_name = optarg;
			break;
		case 'X': {
			char *eq = strchr(optarg, '=');
			if (!eq || spec.n_override >= MODEL_RANDOM_MAX_OVERRIDES ||
			    model_random_parse_type(eq + 1, &spec.override[spec.n_override].type) < 0) {
				fprintf(stderr, "dify-edge: write-random: bad --tensor-type '%s' (NAME=TYPE)\n", optarg);
				return 2;
			}
			*eq = 0;
			spec.override[spec.n_override++].name = optarg;
			break;
		}
		case 'h':
			usage(stdout);
			return 0;
		default:
			bad_option("write-random", argv);
			return 2;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "dify-edge: write-random: unexpected argument '%s'\n", argv[optind]);
		return 2;
	}
	if (!out || !have_arch || !have_type) {
		fprintf(stderr, "dify-edge: write-random: --arch, --type and -o are required (see --help)\n");
		return 2;
	}
	if (vocab) {
		errno = 0;
		long long v = strtoll(vocab, &end, 10);
		if (errno || end == vocab || *end || v < 1 || v > (1LL << 31)) {
			fprintf(stderr, "dify-edge: write-random: bad --vocab '%s'\n", vocab);
			return 2;
		}
		spec.n_vocab = v;
	}
	rc = model_random_write(&spec, out, err, sizeof(err));
	if (rc < 0) {
		fprintf(stderr, "dify-edge: %s\n", err);
		return rc == -ENOMEM || rc == -EIO || rc == -ENOSPC ? 1 : 2;
	}
	return 0;
}
