/*
 * cmd_gguf.c: 'dify-edge gguf': inspect GGUF files, and dispatch
 * 'gguf write-random' (cmd_write_random.c).
 *
 *   dify-edge gguf info MODEL [--json] [-n N]
 *
 * prints the header, every metadata value (arrays summarized: element type,
 * length and the first N elements, nested arrays likewise) and every tensor
 * (name, type, shape, offset from the data section, bytes). The file is
 * opened by the validating reader, so a malformed file is reported as one
 * line naming the file, the byte offset and the problem, exit status 2.
 * --json prints the same as one JSON object (jansson); float values that
 * JSON cannot hold (NaN, infinities) are written as the strings "nan",
 * "inf", "-inf".
 */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "dify-edge-core/app/cmds.h"
#include "dify-edge-core/runtime/gguf.h"

#define DEFAULT_SHOWN 8     /* array elements shown */
#define TEXT_STR_MAX 120    /* bytes of a string value shown in text mode */

static void usage(FILE *f)
{
	fprintf(f,
		"usage: dify-edge gguf info MODEL [--json] [-n N]\n"
		"       dify-edge gguf write-random --arch llama|qwen2 --type T ... -o FILE\n"
		"\n"
		"  info          print the header, all metadata and every tensor of MODEL\n"
		"    --json      one JSON object instead of text\n"
		"    -n N        array elements shown per array (default %d)\n"
		"  write-random  write a model with random weights (see 'gguf write-random --help')\n"
		"\n"
		"examples:\n"
		"  dify-edge gguf info stories260K.gguf\n"
		"  dify-edge gguf info model.gguf --json | jq '.tensors | length'\n",
		DEFAULT_SHOWN);
}

/* ---- text ---- */

/* A string, quoted and escaped, cut at MAX bytes (never inside a UTF-8
 * sequence). */
static void print_str(FILE *f, const uint8_t *s, uint64_t n, uint64_t max)
{
	uint64_t shown = n < max ? n : max;
	while (shown > 0 && shown < n && (s[shown] & 0xC0) == 0x80)
		shown--;
	fputc('"', f);
	for (uint64_t i = 0; i < shown; i++) {
		uint8_t c = s[i];
		if (c == '"' || c == '\\')
			fprintf(f, "\\%c", c);
		else if (c == '\n')
			fputs("\\n", f);
		else if (c == '\t')
			fputs("\\t", f);
		else if (c < 0x20 || c == 0x7f)
			fprintf(f, "\\x%02x", c);
		else
			fputc(c, f);
	}
	fputc('"', f);
	if (shown < n)
		fprintf(f, "... (%" PRIu64 " bytes)", n);
}

/* NAME with control characters shown as \xNN, so a key or tensor name
 * cannot break the layout or drive the terminal. Truncated to LEN - 1. */
static const char *esc(char *buf, size_t len, const char *name)
{
	size_t o = 0;
	for (; *name && o + 5 < len; name++) {
		uint8_t c = (uint8_t)*name;
		if (c < 0x20 || c == 0x7f)
			o += (size_t)snprintf(buf + o, len - o, "\\x%02x", c);
		else
			buf[o++] = (char)c;
	}
	buf[o] = 0;
	return buf;
}

static void print_scalar(FILE *f, const struct gguf_value *v)
{
	switch (v->type) {
	case GGUF_TYPE_FLOAT32:
	case GGUF_TYPE_FLOAT64:
		fprintf(f, "%.9g", gguf_value_f64(v));
		break;
	case GGUF_TYPE_BOOL:
		fputs(gguf_value_i64(v) ? "true" : "false", f);
		break;
	case GGUF_TYPE_UINT64:
		fprintf(f, "%" PRIu64, gguf_value_u64(v));
		break;
	default:
		fprintf(f, "%" PRId64, gguf_value_i64(v));
		break;
	}
}

static void print_value(FILE *f, const struct gguf_file *g, const struct gguf_value *v,
			uint64_t shown, uint64_t strmax)
{
	if (v->type == GGUF_TYPE_STRING) {
		print_str(f, v->p, v->n, strmax);
	} else if (v->type == GGUF_TYPE_ARRAY) {
		uint64_t k = v->n < shown ? v->n : shown;
		fprintf(f, "[%s x %" PRIu64 "]", gguf_type_name(v->elem_type), v->n);
		if (!v->n)
			return;
		if (!k) {
			fputs(" [...]", f);
			return;
		}
		fputs(" [", f);
		for (uint64_t i = 0; i < k; i++) {
			struct gguf_value e;
			if (gguf_arr_elem(g, v, i, &e))
				break;
			if (i)
				fputs(", ", f);
			print_value(f, g, &e, shown, 40);
		}
		fputs(k < v->n ? ", ...]" : "]", f);
	} else {
		print_scalar(f, v);
	}
}

static void shape_str(char *buf, size_t len, const struct gguf_tensor *t)
{
	size_t o = 0;
	for (uint32_t d = 0; d < t->n_dims && o < len; d++)
		o += (size_t)snprintf(buf + o, len - o, "%s%" PRId64, d ? " x " : "", t->ne[d]);
}

static void info_text(FILE *f, const struct gguf_file *g, uint64_t shown)
{
	size_t keyw = 0;
	fprintf(f, "file:        %s\n", gguf_path(g));
	fprintf(f, "version:     %u\n", gguf_version(g));
	fprintf(f, "size:        %zu bytes\n", gguf_size(g));
	fprintf(f, "alignment:   %zu\n", gguf_alignment(g));
	fprintf(f, "data offset: %zu\n", gguf_data_offset(g));
	fprintf(f, "\nmetadata: %" PRId64 " keys\n", gguf_n_kv(g));
	for (int64_t k = 0; k < gguf_n_kv(g); k++) {
		size_t l = strlen(gguf_key(g, k));
		keyw = l > keyw ? l : keyw;
	}
	for (int64_t k = 0; k < gguf_n_kv(g); k++) {
		struct gguf_value v;
		gguf_kv_value(g, k, &v);
		char kb[512];
		fprintf(f, "  %-*s %-4s ", (int)keyw, esc(kb, sizeof(kb), gguf_key(g, k)),
			gguf_type_name(v.type));
		print_value(f, g, &v, shown, TEXT_STR_MAX);
		fputc('\n', f);
	}
	fprintf(f, "\ntensors: %" PRId64 "\n", gguf_n_tensors(g));
	if (!gguf_n_tensors(g))
		return;
	size_t namew = 4;
	for (int64_t i = 0; i < gguf_n_tensors(g); i++) {
		size_t l = strlen(gguf_tensor(g, i)->name);
		namew = l > namew ? l : namew;
	}
	fprintf(f, "  %-*s %-7s %-24s %12s %12s\n", (int)namew, "name", "type", "shape", "offset", "bytes");
	for (int64_t i = 0; i < gguf_n_tensors(g); i++) {
		const struct gguf_tensor *t = gguf_tensor(g, i);
		char shape[128], nb[512];
		shape_str(shape, sizeof(shape), t);
		fprintf(f, "  %-*s %-7s %-24s %12" PRIu64 " %12zu\n", (int)namew, esc(nb, sizeof(nb), t->name),
			ggml_type_name(t->type), shape, t->offset, t->nbytes);
	}
}

/* ---- json ---- */

static json_t *json_value(const struct gguf_file *g, const struct gguf_value *v,
			  uint64_t shown, bool top)
{
	switch (v->type) {
	case GGUF_TYPE_STRING:
		return json_stringn((const char *)v->p, (size_t)v->n);
	case GGUF_TYPE_FLOAT32:
	case GGUF_TYPE_FLOAT64: {
		/* JSON has no NaN or infinities: those are written as text */
		double d = gguf_value_f64(v);
		if (isnan(d))
			return json_string("nan");
		if (isinf(d))
			return json_string(d > 0 ? "inf" : "-inf");
		return json_real(d);
	}
	case GGUF_TYPE_BOOL:
		return json_boolean(gguf_value_i64(v));
	case GGUF_TYPE_UINT64:
		/* JSON integers are int64 here (jansson); larger values as text */
		if (gguf_value_u64(v) > INT64_MAX) {
			char b[32];
			snprintf(b, sizeof(b), "%" PRIu64, gguf_value_u64(v));
			return json_string(b);
		}
		return json_integer((json_int_t)gguf_value_u64(v));
	case GGUF_TYPE_ARRAY: {
		json_t *o = json_object(), *first = json_array();
		uint64_t k = v->n < shown ? v->n : shown;
		for (uint64_t i = 0; i < k; i++) {
			struct gguf_value e;
			if (gguf_arr_elem(g, v, i, &e))
				break;
			json_array_append_new(first, json_value(g, &e, shown, false));
		}
		json_object_set_new(o, "type", json_string("arr"));
		json_object_set_new(o, "elem_type", json_string(gguf_type_name(v->elem_type)));
		json_object_set_new(o, "n", json_integer((json_int_t)v->n));
		json_object_set_new(o, "first", first);
		(void)top;
		return o;
	}
	default:
		return json_integer(gguf_value_i64(v));
	}
}

static int info_json(FILE *f, const struct gguf_file *g, uint64_t shown)
{
	json_t *root = json_object(), *meta = json_array(), *tensors = json_array();
	int rc;

	json_object_set_new(root, "file", json_string(gguf_path(g)));
	json_object_set_new(root, "version", json_integer(gguf_version(g)));
	json_object_set_new(root, "size", json_integer((json_int_t)gguf_size(g)));
	json_object_set_new(root, "alignment", json_integer((json_int_t)gguf_alignment(g)));
	json_object_set_new(root, "data_offset", json_integer((json_int_t)gguf_data_offset(g)));
	for (int64_t k = 0; k < gguf_n_kv(g); k++) {
		struct gguf_value v;
		json_t *kv = json_object();
		gguf_kv_value(g, k, &v);
		json_object_set_new(kv, "key", json_string(gguf_key(g, k)));
		json_object_set_new(kv, "type", json_string(gguf_type_name(v.type)));
		json_object_set_new(kv, "value", json_value(g, &v, shown, true));
		json_array_append_new(meta, kv);
	}
	for (int64_t i = 0; i < gguf_n_tensors(g); i++) {
		const struct gguf_tensor *t = gguf_tensor(g, i);
		json_t *o = json_object(), *shape = json_array();
		for (uint32_t d = 0; d < t->n_dims; d++)
			json_array_append_new(shape, json_integer(t->ne[d]));
		json_object_set_new(o, "name", json_string(t->name));
		json_object_set_new(o, "type", json_string(ggml_type_name(t->type)));
		json_object_set_new(o, "shape", shape);
		json_object_set_new(o, "offset", json_integer((json_int_t)t->offset));
		json_object_set_new(o, "bytes", json_integer((json_int_t)t->nbytes));
		json_array_append_new(tensors, o);
	}
	json_object_set_new(root, "metadata", meta);
	json_object_set_new(root, "tensors", tensors);
	rc = json_dumpf(root, f, JSON_INDENT(1) | JSON_PRESERVE_ORDER);
	fputc('\n', f);
	json_decref(root);
	return rc;
}

static int cmd_info(int argc, char **argv)
{
	const char *path = NULL;
	bool json = false;
	uint64_t shown = DEFAULT_SHOWN;
	struct gguf_file *g = NULL;
	char err[512];
	int rc = 0;

	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--json")) {
			json = true;
		} else if (!strcmp(argv[i], "-n") || !strcmp(argv[i], "--elements")) {
			char *end;
			if (i + 1 >= argc) {
				fprintf(stderr, "dify-edge: gguf info: %s needs a number\n", argv[i]);
				return 2;
			}
			errno = 0;
			shown = strtoull(argv[++i], &end, 10);
			if (errno || *end || !*argv[i] || argv[i][0] == '-') {
				fprintf(stderr, "dify-edge: gguf info: -n '%s' is not a count\n", argv[i]);
				return 2;
			}
		} else if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
			usage(stdout);
			return 0;
		} else if (argv[i][0] == '-' && argv[i][1]) {
			fprintf(stderr, "dify-edge: gguf info: unknown option '%s'\n", argv[i]);
			return 2;
		} else if (path) {
			fprintf(stderr, "dify-edge: gguf info: one MODEL only ('%s' and '%s')\n", path, argv[i]);
			return 2;
		} else {
			path = argv[i];
		}
	}
	if (!path) {
		fprintf(stderr, "dify-edge: gguf info: MODEL missing\n");
		usage(stderr);
		return 2;
	}
	rc = gguf_open(path, NULL, &g, err, sizeof(err));
	if (rc < 0) {
		fprintf(stderr, "dify-edge: %s\n", err);
		rc = rc == -ENOMEM ? 1 : 2;
		goto out;
	}
	if (json) {
		if (info_json(stdout, g, shown)) {
			fprintf(stderr, "dify-edge: gguf info: JSON output failed\n");
			rc = 1;
			goto out;
		}
	} else {
		info_text(stdout, g, shown);
	}
	if (fflush(stdout) != 0) {
		fprintf(stderr, "dify-edge: gguf info: write: %s\n", strerror(errno));
		rc = 1;
	}
out:
	gguf_close(g);
	return rc;
}

struct subcommand {
	const char *name;
	int (*fn)(int argc, char **argv);
};

static const struct subcommand subcommands[] = {
	{ .name = "info", .fn = cmd_info },
	{ .name = "write-random", .fn = cmd_gguf_write_random },
};

int cmd_gguf(int argc, char **argv)
{
	if (argc < 2) {
		usage(stderr);
		return 2;
	}
	if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
		usage(stdout);
		return 0;
	}
	for (size_t i = 0; i < sizeof(subcommands) / sizeof(subcommands[0]); i++)
		if (!strcmp(argv[1], subcommands[i].name))
			return subcommands[i].fn(argc - 1, argv + 1);
	fprintf(stderr, "dify-edge: gguf: unknown subcommand '%s'\n", argv[1]);
	usage(stderr);
	return 2;
}
