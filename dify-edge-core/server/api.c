/*
 * api.c: request parsing and validation (see api.h).
 *
 * DESIGN
 * Each parser decodes the body with jansson (after our own UTF-8 check, so
 * the message names the byte offset), checks that the top level is an
 * object, then reads fields through small typed getters (get_str, get_num,
 * get_int, get_bool) that accept "absent" and "null" as "use the default"
 * and fail with a message naming the field for any other type. Strings with
 * an embedded NUL are refused (the model and SQLite take C strings).
 */
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "dify-edge-core/server/api.h"

#define IRE "invalid_request_error"

int api_fail(struct api_error *e, int status, const char *type, const char *code,
	     const char *param, const char *fmt, ...)
{
	va_list ap;
	e->status = status;
	e->type = type;
	e->code = code;
	snprintf(e->param, sizeof(e->param), "%s", param ? param : "");
	va_start(ap, fmt);
	vsnprintf(e->message, sizeof(e->message), fmt, ap);
	va_end(ap);
	return -1;
}

char *api_error_json(const struct api_error *e)
{
	char *msg = api_utf8_sanitize(e->message, strlen(e->message), NULL);
	json_t *o = json_pack("{s:{s:s,s:s,s:o,s:s}}", "error", "message", msg ? msg : "error",
			      "type", e->type ? e->type : "server_error", "param",
			      e->param[0] ? json_string(e->param) : json_null(), "code",
			      e->code ? e->code : "error");
	char *s = o ? json_dumps(o, JSON_COMPACT) : NULL;
	json_decref(o);
	free(msg);
	return s;
}

/* ---- UTF-8 ---- */

/* Length of the valid sequence at s[0..n), or 0 when invalid/incomplete. */
static size_t utf8_seq(const unsigned char *s, size_t n)
{
	unsigned c = s[0];
	if (c < 0x80)
		return 1;
	if (c < 0xC2 || c > 0xF4)
		return 0;
	if (c < 0xE0) {
		if (n < 2 || (s[1] & 0xC0) != 0x80)
			return 0;
		return 2;
	}
	if (c < 0xF0) {
		if (n < 3 || (s[1] & 0xC0) != 0x80 || (s[2] & 0xC0) != 0x80)
			return 0;
		if (c == 0xE0 && s[1] < 0xA0)
			return 0; /* overlong */
		if (c == 0xED && s[1] >= 0xA0)
			return 0; /* surrogate */
		return 3;
	}
	if (n < 4 || (s[1] & 0xC0) != 0x80 || (s[2] & 0xC0) != 0x80 || (s[3] & 0xC0) != 0x80)
		return 0;
	if (c == 0xF0 && s[1] < 0x90)
		return 0;
	if (c == 0xF4 && s[1] >= 0x90)
		return 0;
	return 4;
}

bool api_utf8_valid(const char *str, size_t len, size_t *bad_off)
{
	const unsigned char *s = (const unsigned char *)str;
	size_t i = 0;
	while (i < len) {
		size_t k = utf8_seq(s + i, len - i);
		if (!k) {
			if (bad_off)
				*bad_off = i;
			return false;
		}
		i += k;
	}
	return true;
}

char *api_utf8_sanitize(const char *str, size_t len, size_t *out_len)
{
	const unsigned char *s = (const unsigned char *)str;
	char *out = malloc(len * 3 + 1), *o = out;
	size_t i = 0;
	if (!out)
		return NULL;
	while (i < len) {
		size_t k = utf8_seq(s + i, len - i);
		if (k) {
			memcpy(o, s + i, k);
			o += k;
			i += k;
		} else {
			memcpy(o, "\xEF\xBF\xBD", 3);
			o += 3;
			i++;
		}
	}
	*o = 0;
	if (out_len)
		*out_len = (size_t)(o - out);
	return out;
}

/* ---- typed getters ---- */

static json_t *load(const char *body, size_t len, struct api_error *e)
{
	json_error_t jerr;
	size_t bad;
	json_t *root;

	if (!body || len == 0) {
		api_fail(e, 400, IRE, "empty_body", NULL, "request body is empty: expected a JSON object");
		return NULL;
	}
	if (!api_utf8_valid(body, len, &bad)) {
		api_fail(e, 400, IRE, "invalid_utf8", NULL, "request body is not valid UTF-8 (byte %zu)", bad);
		return NULL;
	}
	root = json_loadb(body, len, JSON_REJECT_DUPLICATES, &jerr);
	if (!root) {
		api_fail(e, 400, IRE, "invalid_json", NULL, "malformed JSON at line %d column %d: %s",
			 jerr.line, jerr.column, jerr.text);
		return NULL;
	}
	if (!json_is_object(root)) {
		json_decref(root);
		api_fail(e, 400, IRE, "invalid_json", NULL, "request body must be a JSON object");
		return NULL;
	}
	return root;
}

static const char *type_name(const json_t *v)
{
	switch (json_typeof(v)) {
	case JSON_OBJECT: return "an object";
	case JSON_ARRAY: return "an array";
	case JSON_STRING: return "a string";
	case JSON_INTEGER: return "an integer";
	case JSON_REAL: return "a number";
	case JSON_TRUE:
	case JSON_FALSE: return "a boolean";
	case JSON_NULL: return "null";
	}
	return "unknown";
}

/* A C string copy of a JSON string value; NULL with e set when it holds NUL. */
static char *dup_str(const json_t *v, const char *name, struct api_error *e)
{
	size_t n = json_string_length(v);
	const char *s = json_string_value(v);
	char *c;
	if (memchr(s, 0, n)) {
		api_fail(e, 400, IRE, "invalid_value", name, "'%s' contains a NUL character", name);
		return NULL;
	}
	c = malloc(n + 1);
	if (!c) {
		api_fail(e, 500, "server_error", "out_of_memory", name, "out of memory");
		return NULL;
	}
	memcpy(c, s, n + 1);
	return c;
}

/* 1 when present (copied to *out), 0 when absent/null, -1 on error. */
static int get_str(json_t *o, const char *name, char **out, struct api_error *e)
{
	json_t *v = json_object_get(o, name);
	*out = NULL;
	if (!v || json_is_null(v))
		return 0;
	if (!json_is_string(v))
		return api_fail(e, 400, IRE, "invalid_type", name, "'%s' must be a string, not %s", name, type_name(v));
	*out = dup_str(v, name, e);
	return *out ? 1 : -1;
}

static int get_num(json_t *o, const char *name, double lo, double hi, double *out, struct api_error *e)
{
	json_t *v = json_object_get(o, name);
	if (!v || json_is_null(v))
		return 0;
	if (!json_is_number(v))
		return api_fail(e, 400, IRE, "invalid_type", name, "'%s' must be a number, not %s", name, type_name(v));
	double d = json_number_value(v);
	if (!(d >= lo && d <= hi))
		return api_fail(e, 400, IRE, "invalid_value", name, "'%s' must be between %g and %g (got %g)", name, lo, hi, d);
	*out = d;
	return 1;
}

static int get_int(json_t *o, const char *name, int64_t lo, int64_t hi, int64_t *out, struct api_error *e)
{
	json_t *v = json_object_get(o, name);
	if (!v || json_is_null(v))
		return 0;
	if (!json_is_integer(v))
		return api_fail(e, 400, IRE, "invalid_type", name, "'%s' must be an integer, not %s", name, type_name(v));
	json_int_t i = json_integer_value(v);
	if (i < lo || i > hi)
		return api_fail(e, 400, IRE, "invalid_value", name, "'%s' must be between %lld and %lld (got %lld)", name,
				(long long)lo, (long long)hi, (long long)i);
	*out = (int64_t)i;
	return 1;
}

static int get_bool(json_t *o, const char *name, bool *out, struct api_error *e)
{
	json_t *v = json_object_get(o, name);
	if (!v || json_is_null(v))
		return 0;
	if (!json_is_boolean(v))
		return api_fail(e, 400, IRE, "invalid_type", name, "'%s' must be a boolean, not %s", name, type_name(v));
	*out = json_is_true(v);
	return 1;
}

static int add_stop(struct api_gen *g, const json_t *v, struct api_error *e)
{
	if (!json_is_string(v))
		return api_fail(e, 400, IRE, "invalid_type", "stop", "'stop' must be a string or an array of strings, not %s",
				type_name(v));
	if (g->n_stop >= API_MAX_STOP)
		return api_fail(e, 400, IRE, "invalid_value", "stop", "'stop' has more than %d strings", API_MAX_STOP);
	size_t n = json_string_length(v);
	if (n == 0 || n > API_MAX_STOP_LEN)
		return api_fail(e, 400, IRE, "invalid_value", "stop", "each 'stop' string must be 1 to %d bytes (got %zu)",
				API_MAX_STOP_LEN, n);
	g->stop[g->n_stop] = dup_str(v, "stop", e);
	if (!g->stop[g->n_stop])
		return -1;
	g->n_stop++;
	return 0;
}

static void gen_free(struct api_gen *g)
{
	for (size_t i = 0; i < g->n_stop; i++)
		free(g->stop[i]);
	free(g->model);
	memset(g, 0, sizeof(*g));
}

static int parse_gen(json_t *o, struct api_gen *g, bool chat, struct api_error *e)
{
	int64_t i64;
	double d;
	bool b;
	json_t *v;
	int r;

	g->max_tokens = -1;
	g->temperature = 1.0;
	g->top_p = 1.0;
	g->repeat_penalty = 1.0;
	if (get_str(o, "model", &g->model, e) < 0)
		return -1;
	if ((r = get_int(o, "max_tokens", 0, 1 << 30, &i64, e)) < 0)
		return -1;
	if (r)
		g->max_tokens = i64;
	if (chat) {
		if ((r = get_int(o, "max_completion_tokens", 0, 1 << 30, &i64, e)) < 0)
			return -1;
		if (r)
			g->max_tokens = i64;
	}
	if ((r = get_num(o, "temperature", 0, 2, &d, e)) < 0)
		return -1;
	if (r)
		g->temperature = d;
	if ((r = get_num(o, "top_p", 0, 1, &d, e)) < 0)
		return -1;
	if (r) {
		if (d <= 0)
			return api_fail(e, 400, IRE, "invalid_value", "top_p", "'top_p' must be greater than 0 (got %g)", d);
		g->top_p = d;
	}
	if ((r = get_int(o, "top_k", 0, 1 << 30, &i64, e)) < 0)
		return -1;
	if (r)
		g->top_k = (int32_t)i64;
	if ((r = get_num(o, "min_p", 0, 1, &d, e)) < 0)
		return -1;
	if (r)
		g->min_p = d;
	if ((r = get_num(o, "repeat_penalty", 0.01, 10, &d, e)) < 0)
		return -1;
	if (r)
		g->repeat_penalty = d;
	v = json_object_get(o, "seed");
	if (v && !json_is_null(v)) {
		if (!json_is_integer(v))
			return api_fail(e, 400, IRE, "invalid_type", "seed", "'seed' must be an integer, not %s", type_name(v));
		g->seed = (uint64_t)json_integer_value(v);
		g->has_seed = true;
	}
	if ((r = get_int(o, "n", 1, 1, &i64, e)) < 0) {
		if (!strcmp(e->code, "invalid_value"))
			snprintf(e->message, sizeof(e->message), "'n' must be 1: one choice per request is supported");
		return -1;
	}
	v = json_object_get(o, "stop");
	if (v && !json_is_null(v)) {
		if (json_is_array(v)) {
			size_t i;
			json_t *s;
			json_array_foreach(v, i, s)
				if (add_stop(g, s, e))
					return -1;
		} else if (add_stop(g, v, e)) {
			return -1;
		}
	}
	b = false;
	if (get_bool(o, "stream", &b, e) < 0)
		return -1;
	g->stream = b;
	b = false;
	if (get_bool(o, "ignore_eos", &b, e) < 0)
		return -1;
	g->ignore_eos = b;
	v = json_object_get(o, "stream_options");
	if (v && !json_is_null(v)) {
		if (!json_is_object(v))
			return api_fail(e, 400, IRE, "invalid_type", "stream_options", "'stream_options' must be an object, not %s",
					type_name(v));
		b = false;
		if (get_bool(v, "include_usage", &b, e) < 0)
			return -1;
		g->include_usage = b;
	}
	return 0;
}

int api_parse_completion(const char *body, size_t len, struct api_completion *out, struct api_error *e)
{
	int ret = -1;
	json_t *v, *o;

	memset(out, 0, sizeof(*out));
	o = load(body, len, e);
	if (!o)
		return -1;
	if (parse_gen(o, &out->g, false, e))
		goto out;
	v = json_object_get(o, "prompt");
	if (!v) {
		api_fail(e, 400, IRE, "missing_field", "prompt", "'prompt' is required");
		goto out;
	}
	if (json_is_array(v)) {
		/* OpenAI allows a batch; we serve one prompt per request */
		if (json_array_size(v) != 1 || !json_is_string(json_array_get(v, 0))) {
			api_fail(e, 400, IRE, "invalid_value", "prompt", "'prompt' must be a string or an array of exactly one string");
			goto out;
		}
		v = json_array_get(v, 0);
	}
	if (!json_is_string(v)) {
		api_fail(e, 400, IRE, "invalid_type", "prompt", "'prompt' must be a string, not %s", type_name(v));
		goto out;
	}
	out->prompt = dup_str(v, "prompt", e);
	if (!out->prompt)
		goto out;
	ret = 0;
out:
	json_decref(o);
	if (ret)
		api_completion_free(out);
	return ret;
}

/* content: a string, null, or an array of {"type":"text","text":...} parts. */
static char *msg_content(json_t *m, size_t idx, struct api_error *e)
{
	json_t *c = json_object_get(m, "content");
	char param[48];
	snprintf(param, sizeof(param), "messages[%zu].content", idx);
	if (!c || json_is_null(c))
		return strdup("");
	if (json_is_string(c))
		return dup_str(c, param, e);
	if (json_is_array(c)) {
		char *buf = NULL;
		size_t sz = 0, i;
		json_t *part;
		FILE *f = open_memstream(&buf, &sz);
		if (!f)
			return NULL;
		json_array_foreach(c, i, part) {
			json_t *t = json_object_get(part, "text");
			const char *ty = json_string_value(json_object_get(part, "type"));
			if (!json_is_object(part) || !ty || strcmp(ty, "text") || !json_is_string(t) ||
			    memchr(json_string_value(t), 0, json_string_length(t))) {
				fclose(f);
				free(buf);
				api_fail(e, 400, IRE, "invalid_value", param,
					 "'%s' parts must be {\"type\":\"text\",\"text\":string}", param);
				return NULL;
			}
			fwrite(json_string_value(t), 1, json_string_length(t), f);
		}
		fclose(f);
		return buf;
	}
	api_fail(e, 400, IRE, "invalid_type", param, "'%s' must be a string or an array of text parts, not %s", param,
		 type_name(c));
	return NULL;
}

int api_parse_chat(const char *body, size_t len, struct api_chat *out, struct api_error *e)
{
	int ret = -1;
	json_t *o, *msgs, *m, *kb;
	size_t i;

	memset(out, 0, sizeof(*out));
	out->kb_top_k = 3;
	o = load(body, len, e);
	if (!o)
		return -1;
	if (parse_gen(o, &out->g, true, e))
		goto out;
	msgs = json_object_get(o, "messages");
	if (!msgs) {
		api_fail(e, 400, IRE, "missing_field", "messages", "'messages' is required");
		goto out;
	}
	if (!json_is_array(msgs)) {
		api_fail(e, 400, IRE, "invalid_type", "messages", "'messages' must be an array, not %s", type_name(msgs));
		goto out;
	}
	if (json_array_size(msgs) == 0 || json_array_size(msgs) > API_MAX_MESSAGES) {
		api_fail(e, 400, IRE, "invalid_value", "messages", "'messages' must hold 1 to %d messages", API_MAX_MESSAGES);
		goto out;
	}
	out->msgs = calloc(json_array_size(msgs), sizeof(*out->msgs));
	if (!out->msgs) {
		api_fail(e, 500, "server_error", "out_of_memory", NULL, "out of memory");
		goto out;
	}
	json_array_foreach(msgs, i, m) {
		char param[48];
		json_t *role = json_object_get(m, "role");
		snprintf(param, sizeof(param), "messages[%zu].role", i);
		if (!json_is_object(m)) {
			api_fail(e, 400, IRE, "invalid_type", "messages", "'messages[%zu]' must be an object, not %s", i, type_name(m));
			goto out;
		}
		if (!json_is_string(role)) {
			api_fail(e, 400, IRE, role ? "invalid_type" : "missing_field", param,
				 "'%s' must be a string (system, user, assistant or tool)", param);
			goto out;
		}
		const char *r = json_string_value(role);
		if (strcmp(r, "system") && strcmp(r, "user") && strcmp(r, "assistant") && strcmp(r, "tool") &&
		    strcmp(r, "developer")) {
			api_fail(e, 400, IRE, "invalid_value", param, "'%s' must be system, user, assistant or tool", param);
			goto out;
		}
		out->msgs[i].role = strdup(!strcmp(r, "developer") ? "system" : r);
		out->msgs[i].content = msg_content(m, i, e);
		out->n_msgs = i + 1;
		if (!out->msgs[i].role || !out->msgs[i].content) {
			if (!out->msgs[i].content && e->status == 0)
				api_fail(e, 500, "server_error", "out_of_memory", NULL, "out of memory");
			goto out;
		}
	}
	kb = json_object_get(o, "kb");
	if (kb && !json_is_null(kb)) {
		if (json_is_boolean(kb)) {
			out->kb = json_is_true(kb);
		} else if (json_is_object(kb)) {
			int64_t k;
			int r = get_int(kb, "top_k", 1, 32, &k, e);
			if (r < 0)
				goto out;
			out->kb = true;
			if (r)
				out->kb_top_k = (int)k;
		} else {
			api_fail(e, 400, IRE, "invalid_type", "kb", "'kb' must be a boolean or {\"top_k\":N}, not %s", type_name(kb));
			goto out;
		}
	}
	ret = 0;
out:
	json_decref(o);
	if (ret)
		api_chat_free(out);
	return ret;
}

int api_parse_embeddings(const char *body, size_t len, struct api_embeddings *out, struct api_error *e)
{
	int ret = -1;
	json_t *o, *in, *s;
	size_t i;

	memset(out, 0, sizeof(*out));
	o = load(body, len, e);
	if (!o)
		return -1;
	if (get_str(o, "model", &out->model, e) < 0)
		goto out;
	in = json_object_get(o, "input");
	if (!in) {
		api_fail(e, 400, IRE, "missing_field", "input", "'input' is required");
		goto out;
	}
	if (json_is_string(in)) {
		out->input = calloc(1, sizeof(char *));
		if (!out->input || !(out->input[0] = dup_str(in, "input", e)))
			goto oom_or_err;
		out->n_input = 1;
	} else if (json_is_array(in)) {
		if (json_array_size(in) == 0 || json_array_size(in) > API_MAX_INPUTS) {
			api_fail(e, 400, IRE, "invalid_value", "input", "'input' must hold 1 to %d strings", API_MAX_INPUTS);
			goto out;
		}
		out->input_is_array = true;
		out->input = calloc(json_array_size(in), sizeof(char *));
		if (!out->input)
			goto oom_or_err;
		json_array_foreach(in, i, s) {
			if (!json_is_string(s)) {
				api_fail(e, 400, IRE, "invalid_type", "input", "'input[%zu]' must be a string, not %s", i, type_name(s));
				goto out;
			}
			if (!(out->input[i] = dup_str(s, "input", e)))
				goto oom_or_err;
			out->n_input = i + 1;
		}
	} else {
		api_fail(e, 400, IRE, "invalid_type", "input", "'input' must be a string or an array of strings, not %s",
			 type_name(in));
		goto out;
	}
	for (i = 0; i < out->n_input; i++)
		if (!out->input[i][0]) {
			api_fail(e, 400, IRE, "invalid_value", "input", "'input' strings must not be empty");
			goto out;
		}
	ret = 0;
	goto out;
oom_or_err:
	if (!e->status)
		api_fail(e, 500, "server_error", "out_of_memory", NULL, "out of memory");
out:
	json_decref(o);
	if (ret)
		api_embeddings_free(out);
	return ret;
}

int api_parse_tokenize(const char *body, size_t len, struct api_tokenize *out, struct api_error *e)
{
	int ret = -1, r;
	json_t *o;

	memset(out, 0, sizeof(*out));
	o = load(body, len, e);
	if (!o)
		return -1;
	if ((r = get_str(o, "content", &out->content, e)) < 0)
		goto out;
	if (!r) {
		api_fail(e, 400, IRE, "missing_field", "content", "'content' is required");
		goto out;
	}
	if (get_bool(o, "add_special", &out->add_special, e) < 0 || get_bool(o, "with_pieces", &out->with_pieces, e) < 0)
		goto out;
	ret = 0;
out:
	json_decref(o);
	if (ret)
		api_tokenize_free(out);
	return ret;
}

int api_parse_detokenize(const char *body, size_t len, struct api_detokenize *out, struct api_error *e)
{
	int ret = -1;
	json_t *o, *t, *v;
	size_t i;

	memset(out, 0, sizeof(*out));
	o = load(body, len, e);
	if (!o)
		return -1;
	t = json_object_get(o, "tokens");
	if (!t) {
		api_fail(e, 400, IRE, "missing_field", "tokens", "'tokens' is required");
		goto out;
	}
	if (!json_is_array(t)) {
		api_fail(e, 400, IRE, "invalid_type", "tokens", "'tokens' must be an array of integers, not %s", type_name(t));
		goto out;
	}
	out->tokens = malloc((json_array_size(t) + 1) * sizeof(int32_t));
	if (!out->tokens) {
		api_fail(e, 500, "server_error", "out_of_memory", NULL, "out of memory");
		goto out;
	}
	json_array_foreach(t, i, v) {
		if (!json_is_integer(v) || json_integer_value(v) < 0 || json_integer_value(v) > INT32_MAX) {
			api_fail(e, 400, IRE, "invalid_value", "tokens", "'tokens[%zu]' must be a non-negative integer token id", i);
			goto out;
		}
		out->tokens[i] = (int32_t)json_integer_value(v);
	}
	out->n = json_array_size(t);
	ret = 0;
out:
	json_decref(o);
	if (ret)
		api_detokenize_free(out);
	return ret;
}

int api_parse_kb_doc(const char *body, size_t len, struct api_kb_doc *out, struct api_error *e)
{
	int ret = -1, r;
	int64_t i64;
	json_t *o;

	memset(out, 0, sizeof(*out));
	out->overlap_chars = -1;
	o = load(body, len, e);
	if (!o)
		return -1;
	if (get_str(o, "name", &out->name, e) < 0)
		goto out;
	if ((r = get_str(o, "text", &out->text, e)) < 0)
		goto out;
	if (!r) {
		api_fail(e, 400, IRE, "missing_field", "text", "'text' is required");
		goto out;
	}
	if (!out->text[0]) {
		api_fail(e, 400, IRE, "invalid_value", "text", "'text' must not be empty");
		goto out;
	}
	if ((r = get_int(o, "chunk_chars", 32, 8192, &i64, e)) < 0)
		goto out;
	if (r)
		out->chunk_chars = (int)i64;
	if ((r = get_int(o, "overlap_chars", 0, 4096, &i64, e)) < 0)
		goto out;
	if (r)
		out->overlap_chars = (int)i64;
	if (out->chunk_chars && out->overlap_chars >= out->chunk_chars) {
		api_fail(e, 400, IRE, "invalid_value", "overlap_chars", "'overlap_chars' must be less than 'chunk_chars'");
		goto out;
	}
	if (!out->name && !(out->name = strdup(""))) {
		api_fail(e, 500, "server_error", "out_of_memory", NULL, "out of memory");
		goto out;
	}
	ret = 0;
out:
	json_decref(o);
	if (ret)
		api_kb_doc_free(out);
	return ret;
}

int api_parse_kb_query(const char *body, size_t len, struct api_kb_query *out, struct api_error *e)
{
	int ret = -1, r;
	int64_t i64;
	json_t *o;

	memset(out, 0, sizeof(*out));
	out->top_k = 4;
	o = load(body, len, e);
	if (!o)
		return -1;
	if ((r = get_str(o, "query", &out->query, e)) < 0)
		goto out;
	if (!r || !out->query[0]) {
		api_fail(e, 400, IRE, r ? "invalid_value" : "missing_field", "query", "'query' is required and must not be empty");
		goto out;
	}
	if ((r = get_int(o, "top_k", 1, 100, &i64, e)) < 0)
		goto out;
	if (r)
		out->top_k = (int)i64;
	ret = 0;
out:
	json_decref(o);
	if (ret)
		api_kb_query_free(out);
	return ret;
}

void api_completion_free(struct api_completion *r)
{
	gen_free(&r->g);
	free(r->prompt);
	r->prompt = NULL;
}

void api_chat_free(struct api_chat *r)
{
	gen_free(&r->g);
	for (size_t i = 0; i < r->n_msgs; i++) {
		free((char *)r->msgs[i].role);
		free((char *)r->msgs[i].content);
	}
	free(r->msgs);
	r->msgs = NULL;
	r->n_msgs = 0;
}

void api_embeddings_free(struct api_embeddings *r)
{
	for (size_t i = 0; i < r->n_input; i++)
		free(r->input[i]);
	free(r->input);
	free(r->model);
	memset(r, 0, sizeof(*r));
}

void api_tokenize_free(struct api_tokenize *r)
{
	free(r->content);
	memset(r, 0, sizeof(*r));
}

void api_detokenize_free(struct api_detokenize *r)
{
	free(r->tokens);
	memset(r, 0, sizeof(*r));
}

void api_kb_doc_free(struct api_kb_doc *r)
{
	free(r->name);
	free(r->text);
	memset(r, 0, sizeof(*r));
}

void api_kb_query_free(struct api_kb_query *r)
{
	free(r->query);
	memset(r, 0, sizeof(*r));
}
