/*
 * cmd_run.c: 'dify-edge run': load a model, tokenize a prompt, generate and
 * stream the completion (or, with --ids, print the generated token ids).
 *
 * Exit status: 0 done; 2 bad usage or bad input (missing or malformed
 * model, unsupported architecture or tensor type, a prompt longer than the
 * context); 1 other failures (out of memory, thread start).
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "dify-edge-core/app/cmds.h"
#include "dify-edge-core/runtime/generate.h"
#include "dify-edge-core/runtime/model.h"
#include "dify-edge-core/runtime/sampler.h"
#include "dify-edge-core/runtime/tpool.h"

/* getopt_long failed on argv[optind - 1]: an unknown option or a missing value */
static void bad_option(const char *cmd, char **argv)
{
	fprintf(stderr, "dify-edge: %s: unknown option or missing value: '%s' (see --help)\n", cmd,
		optind > 0 ? argv[optind - 1] : "?");
}

static void usage(FILE *f)
{
	fprintf(f,
		"usage: dify-edge run --model M [--prompt TEXT] [-n N] [options]\n"
		"\n"
		"Generate a completion of TEXT (empty: start from BOS alone) and print it.\n"
		"  -m, --model M          GGUF model (llama or qwen2; f32/f16/q8_0/q4_0)\n"
		"  -p, --prompt TEXT      prompt (default empty)\n"
		"  -n, --n-predict N      tokens to generate (default 128)\n"
		"  -t, --threads T        compute threads (default: online CPUs)\n"
		"  -c, --ctx N            context positions (default min(training context, 4096))\n"
		"      --temp T           temperature, 0 = greedy (default 0.8)\n"
		"      --top-k K          (default 40, 0 = off)\n"
		"      --top-p P          (default 0.95, 1 = off)\n"
		"      --min-p P          (default 0.05, 0 = off)\n"
		"      --repeat-penalty X (default 1 = off)   --repeat-last-n N (default 64)\n"
		"      --seed S           sampler seed (default 0)\n"
		"      --stop STR         stop when STR appears (repeatable, up to %d)\n"
		"      --ignore-eos       do not stop at end-of-generation tokens\n"
		"      --ids              print the generated token ids, space separated\n"
		"  -v, --verbose          timings on stderr\n"
		"\n"
		"examples:\n"
		"  dify-edge run -m stories260K.gguf --prompt '' -n 200 --temp 0 --ids\n"
		"  dify-edge run -m model.gguf --prompt 'Once upon a time' -n 64 --seed 42\n",
		GEN_MAX_STOP);
}

static int on_text(void *arg, const char *text, size_t len)
{
	(void)arg;
	fwrite(text, 1, len, stdout);
	fflush(stdout);
	return 0;
}

struct ids_out {
	int64_t n;
};

static int on_token(void *arg, int32_t id)
{
	struct ids_out *o = arg;
	printf("%s%d", o->n++ ? " " : "", id);
	return 0;
}

static int parse_num(const char *opt, const char *s, double lo, double hi, double *out)
{
	char *end;
	errno = 0;
	double v = strtod(s, &end);
	if (errno || end == s || *end || !(v >= lo && v <= hi)) {
		fprintf(stderr, "dify-edge: run: bad %s '%s' (want %g..%g)\n", opt, s, lo, hi);
		return -1;
	}
	*out = v;
	return 0;
}

int cmd_run(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "model", required_argument, NULL, 'm' },
		{ "prompt", required_argument, NULL, 'p' },
		{ "n-predict", required_argument, NULL, 'n' },
		{ "threads", required_argument, NULL, 't' },
		{ "ctx", required_argument, NULL, 'c' },
		{ "temp", required_argument, NULL, 1 },
		{ "top-k", required_argument, NULL, 2 },
		{ "top-p", required_argument, NULL, 3 },
		{ "min-p", required_argument, NULL, 4 },
		{ "repeat-penalty", required_argument, NULL, 5 },
		{ "repeat-last-n", required_argument, NULL, 6 },
		{ "seed", required_argument, NULL, 7 },
		{ "stop", required_argument, NULL, 8 },
		{ "ignore-eos", no_argument, NULL, 9 },
		{ "ids", no_argument, NULL, 10 },
		{ "verbose", no_argument, NULL, 'v' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	const char *path = NULL, *prompt = "";
	double n_predict = 128, threads = 0, n_ctx = 0, v;
	struct sampler_params sp;
	struct gen_params gp = { .max_tokens = 128 };
	bool ids = false, verbose = false;
	struct tpool *pool = NULL;
	struct model *m = NULL;
	struct model_ctx *ctx = NULL;
	struct sampler *s = NULL;
	int32_t *toks = NULL;
	char err[512];
	int c, ret = 2, rc;

	sampler_params_default(&sp);
	optind = 1;
	opterr = 0; /* one line of our own instead of getopt's */
	while ((c = getopt_long(argc, argv, "m:p:n:t:c:vh", opts, NULL)) != -1) {
		switch (c) {
		case 'm': path = optarg; break;
		case 'p': prompt = optarg; break;
		case 'n': if (parse_num("-n", optarg, -1, 1e9, &n_predict)) goto out; break;
		case 't': if (parse_num("--threads", optarg, 1, TPOOL_MAX_THREADS, &threads)) goto out; break;
		case 'c': if (parse_num("--ctx", optarg, 1, 1 << 24, &n_ctx)) goto out; break;
		case 1: if (parse_num("--temp", optarg, 0, 100, &v)) goto out; sp.temp = (float)v; break;
		case 2: if (parse_num("--top-k", optarg, 0, 1e9, &v)) goto out; sp.top_k = (int32_t)v; break;
		case 3: if (parse_num("--top-p", optarg, 1e-6, 1, &v)) goto out; sp.top_p = (float)v; break;
		case 4: if (parse_num("--min-p", optarg, 0, 1, &v)) goto out; sp.min_p = (float)v; break;
		case 5: if (parse_num("--repeat-penalty", optarg, 1e-3, 100, &v)) goto out; sp.repeat_penalty = (float)v; break;
		case 6: if (parse_num("--repeat-last-n", optarg, 0, 1 << 20, &v)) goto out; sp.repeat_last_n = (int32_t)v; break;
		case 7: if (parse_num("--seed", optarg, 0, 1.8e19, &v)) goto out; sp.seed = (uint64_t)v; break;
		case 8:
			if (gp.n_stop >= GEN_MAX_STOP || !*optarg || strlen(optarg) > GEN_MAX_STOP_LEN) {
				fprintf(stderr, "dify-edge: run: --stop: at most %d strings of 1..%d bytes\n",
					GEN_MAX_STOP, GEN_MAX_STOP_LEN);
				goto out;
			}
			gp.stop[gp.n_stop++] = optarg;
			break;
		case 9: gp.ignore_eog = true; break;
		case 10: ids = true; break;
		case 'v': verbose = true; break;
		case 'h': usage(stdout); ret = 0; goto out;
		default: bad_option("run", argv); goto out;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "dify-edge: run: unexpected argument '%s'\n", argv[optind]);
		goto out;
	}
	if (!path) {
		fprintf(stderr, "dify-edge: run: --model is required (see --help)\n");
		goto out;
	}
	if (threads == 0) {
		long n = sysconf(_SC_NPROCESSORS_ONLN);
		threads = n > 0 ? (n < TPOOL_MAX_THREADS ? n : TPOOL_MAX_THREADS) : 1;
	}
	gp.max_tokens = (int64_t)n_predict;

	pool = tpool_new((int)threads, err, sizeof(err));
	if (!pool) {
		fprintf(stderr, "dify-edge: run: %s\n", err);
		ret = 1;
		goto out;
	}
	rc = model_load(path, pool, NULL, &m, err, sizeof(err));
	if (rc < 0) {
		fprintf(stderr, "dify-edge: %s\n", err);
		ret = rc == -ENOMEM ? 1 : 2;
		goto out;
	}
	const struct tok *tk = model_tok(m);
	struct model_ctx_opts co = { .n_ctx = (int64_t)n_ctx };
	rc = model_ctx_new(m, &co, &ctx, err, sizeof(err));
	if (rc < 0) {
		fprintf(stderr, "dify-edge: %s\n", err);
		ret = rc == -ENOMEM ? 1 : 2;
		goto out;
	}
	size_t plen = strlen(prompt);
	bool bos = tok_bos(tk) >= 0 && (tok_add_bos_default(tk) || plen == 0);
	int64_t n = tok_encode(tk, prompt, plen, bos, false, NULL, 0);
	if (n >= 0) {
		toks = malloc(((size_t)n + 1) * sizeof(*toks));
		if (!toks) {
			fprintf(stderr, "dify-edge: run: out of memory\n");
			ret = 1;
			goto out;
		}
		n = tok_encode(tk, prompt, plen, bos, false, toks, (size_t)n + 1);
	}
	if (n < 0) {
		fprintf(stderr, "dify-edge: run: prompt: %s\n", n == -EINVAL ? "not valid UTF-8" : strerror((int)-n));
		goto out;
	}
	if (n == 0) {
		fprintf(stderr, "dify-edge: run: empty prompt and the vocabulary has no BOS token\n");
		goto out;
	}
	if (n > model_ctx_n_ctx(ctx)) {
		fprintf(stderr, "dify-edge: run: prompt of %lld tokens does not fit the context of %lld\n",
			(long long)n, (long long)model_ctx_n_ctx(ctx));
		goto out;
	}
	s = sampler_new(&sp, model_n_vocab(m));
	if (!s) {
		fprintf(stderr, "dify-edge: run: bad sampling parameters\n");
		goto out;
	}
	struct ids_out io = { 0 };
	if (ids) {
		gp.on_token = on_token;
		gp.arg = &io;
	} else {
		/* valid UTF-8 out: random models emit lone byte tokens */
		gp.on_text = on_text;
		gp.utf8_replace = true;
	}
	struct gen_result res;
	rc = gen_run(ctx, s, toks, n, &gp, &res, err, sizeof(err));
	if (rc < 0) {
		fprintf(stderr, "dify-edge: run: %s\n", err);
		ret = rc == -ENOSPC || rc == -EINVAL ? 2 : 1;
		goto out;
	}
	printf("\n");
	fflush(stdout);
	if (verbose)
		fprintf(stderr,
			"prompt: %lld tokens in %.1f ms (%.1f t/s); generated %lld tokens in %.1f ms (%.1f t/s); stop: %s\n",
			(long long)res.n_prompt_eval, res.t_prompt_ns / 1e6,
			res.t_prompt_ns ? res.n_prompt_eval * 1e9 / res.t_prompt_ns : 0.0,
			(long long)res.n_gen, res.t_gen_ns / 1e6,
			res.t_gen_ns ? res.n_gen * 1e9 / res.t_gen_ns : 0.0, gen_stop_name(res.stop));
	ret = 0;
out:
	sampler_free(s);
	free(toks);
	model_ctx_free(ctx);
	model_free(m);
	tpool_free(pool);
	return ret;
}
