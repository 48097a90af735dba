/*
 * cmd_tokenize.c: 'dify-edge tokenize --model M': the token ids of stdin.
 *
 * Reads stdin to the end as raw bytes -- exactly what was read, nothing
 * stripped, since a test vector may end in a newline or spaces -- encodes it
 * with the model's tokenizer and prints the ids space separated on one
 * line. By default no BOS is added and special-token texts in the input are
 * plain text (the convention of llama.cpp's tokenizer test vectors);
 * --bos and --special turn those on. --pieces prints each token's text
 * (escaped) after its id, one token per line, for looking at a split.
 *
 * Exit status: 0; 2 for bad usage or bad input (no model, a model without a
 * tokenizer, text the tokenizer cannot take: invalid UTF-8 for byte-level
 * BPE, more than TOK_MAX_TEXT bytes); 1 when reading stdin fails.
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "dify-edge-core/app/cmds.h"
#include "dify-edge-core/runtime/gguf.h"
#include "dify-edge-core/runtime/tokenizer.h"

static void usage(FILE *f)
{
	fprintf(f,
		"usage: dify-edge tokenize --model M [--bos] [--special] [--pieces] < TEXT\n"
		"\n"
		"Print the token ids of stdin (read as raw bytes, nothing stripped),\n"
		"space separated on one line.\n"
		"\n"
		"options:\n"
		"  -m, --model M   GGUF file whose tokenizer.ggml.* metadata to use\n"
		"  --bos           prepend BOS when the vocabulary has one (default: no)\n"
		"  --special       match control-token texts such as <|im_start|> in the\n"
		"                  input (default: they are plain text)\n"
		"  --pieces        one token per line: id, a tab, its text (C-escaped)\n"
		"  -h, --help      this text\n"
		"\n"
		"examples:\n"
		"  printf 'Hello world' | dify-edge tokenize --model stories260K.gguf\n"
		"  dify-edge tokenize -m qwen2.gguf --special --pieces < prompt.txt\n");
}

/* Read all of stdin into a malloc'd buffer. 0 or -errno. */
static int read_all(FILE *f, char **out, size_t *len)
{
	size_t cap = 1 << 16, n = 0;
	char *buf = malloc(cap);
	if (!buf)
		return -ENOMEM;
	for (;;) {
		if (n == cap) {
			char *b = realloc(buf, cap * 2);
			if (!b) {
				free(buf);
				return -ENOMEM;
			}
			buf = b;
			cap *= 2;
		}
		size_t r = fread(buf + n, 1, cap - n, f);
		n += r;
		if (r == 0) {
			if (ferror(f)) {
				int e = errno ? errno : EIO;
				free(buf);
				return -e;
			}
			break;
		}
	}
	*out = buf;
	*len = n;
	return 0;
}

static void print_escaped(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c == '\\')
			fputs("\\\\", stdout);
		else if (c == '\n')
			fputs("\\n", stdout);
		else if (c == '\t')
			fputs("\\t", stdout);
		else if (c < 0x20 || c == 0x7f)
			printf("\\x%02x", c);
		else
			putchar(c);
	}
}

int cmd_tokenize(int argc, char **argv)
{
	enum { OPT_BOS = 256, OPT_SPECIAL, OPT_PIECES };
	static const struct option opts[] = {
		{ .name = "model", .has_arg = required_argument, .val = 'm' },
		{ .name = "bos", .has_arg = no_argument, .val = OPT_BOS },
		{ .name = "special", .has_arg = no_argument, .val = OPT_SPECIAL },
		{ .name = "pieces", .has_arg = no_argument, .val = OPT_PIECES },
		{ .name = "help", .has_arg = no_argument, .val = 'h' },
		{ 0 },
	};
	const char *model = NULL;
	bool bos = false, special = false, pieces = false;
	struct gguf_file *g = NULL;
	struct tok *t = NULL;
	char *text = NULL;
	int32_t *ids = NULL;
	char err[512];
	int status = 2, c;

	optind = 1;
	opterr = 0;
	while ((c = getopt_long(argc, argv, "m:h", opts, NULL)) != -1) {
		switch (c) {
		case 'm': model = optarg; break;
		case OPT_BOS: bos = true; break;
		case OPT_SPECIAL: special = true; break;
		case OPT_PIECES: pieces = true; break;
		case 'h': usage(stdout); status = 0; goto out;
		default:
			fprintf(stderr, "dify-edge: tokenize: bad option '%s' (see dify-edge tokenize --help)\n",
				argv[optind - 1]);
			goto out;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "dify-edge: tokenize: unexpected argument '%s' (the text comes on stdin)\n",
			argv[optind]);
		goto out;
	}
	if (!model) {
		fprintf(stderr, "dify-edge: tokenize: --model is required (see dify-edge tokenize --help)\n");
		goto out;
	}
	if (gguf_open(model, NULL, &g, err, sizeof(err)) < 0) {
		fprintf(stderr, "dify-edge: tokenize: %s\n", err);
		goto out;
	}
	t = tok_new(g, err, sizeof(err));
	if (!t) {
		fprintf(stderr, "dify-edge: tokenize: %s\n", err);
		goto out;
	}
	size_t len = 0;
	int rc = read_all(stdin, &text, &len);
	if (rc < 0) {
		fprintf(stderr, "dify-edge: tokenize: stdin: %s\n", strerror(-rc));
		status = 1;
		goto out;
	}
	size_t cap = len + 16;
	ids = malloc(cap * sizeof(*ids));
	if (!ids) {
		fprintf(stderr, "dify-edge: tokenize: out of memory\n");
		status = 1;
		goto out;
	}
	int64_t n = tok_encode(t, text, len, bos, special, ids, cap);
	if (n > (int64_t)cap) {
		cap = (size_t)n;
		int32_t *v = realloc(ids, cap * sizeof(*ids));
		if (!v) {
			fprintf(stderr, "dify-edge: tokenize: out of memory\n");
			status = 1;
			goto out;
		}
		ids = v;
		n = tok_encode(t, text, len, bos, special, ids, cap);
	}
	if (n == -EINVAL) {
		fprintf(stderr, "dify-edge: tokenize: stdin: text is not valid UTF-8 (the %s tokenizer needs UTF-8)\n",
			tok_kind(t) == TOK_KIND_BPE ? "byte-level BPE" : "SentencePiece");
		goto out;
	}
	if (n == -E2BIG) {
		fprintf(stderr, "dify-edge: tokenize: stdin: %zu bytes is more than the %zu a call takes\n",
			len, (size_t)TOK_MAX_TEXT);
		goto out;
	}
	if (n < 0) {
		fprintf(stderr, "dify-edge: tokenize: %s\n", strerror((int)-n));
		status = 1;
		goto out;
	}
	for (int64_t i = 0; i < n; i++) {
		if (pieces) {
			size_t tl = 0;
			const char *s = tok_text(t, ids[i], &tl);
			printf("%d\t", ids[i]);
			print_escaped(s, tl);
			putchar('\n');
		} else {
			printf(i ? " %d" : "%d", ids[i]);
		}
	}
	if (!pieces)
		putchar('\n');
	if (fflush(stdout) != 0 || ferror(stdout)) {
		fprintf(stderr, "dify-edge: tokenize: stdout: %s\n", strerror(errno));
		status = 1;
		goto out;
	}
	status = 0;
out:
	free(ids);
	free(text);
	tok_free(t);
	gguf_close(g);
	return status;
}
