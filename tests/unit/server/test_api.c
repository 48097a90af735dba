/*
 * test_api.c: request parsing tables: every route's good bodies and the bad
 * ones (malformed JSON, wrong types, missing fields, out-of-range values,
 * invalid UTF-8, embedded NUL), each with the status and code it must get;
 * plus the error JSON shape and UTF-8 sanitizing.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include <jansson.h>

#include "dify-edge-core/server/api.h"

enum route { R_COMPLETION, R_CHAT, R_EMBED, R_TOKENIZE, R_DETOKENIZE, R_KB_DOC, R_KB_QUERY };

struct parse_case {
	enum route route;
	const char *body;
	int status;        /* 0: must parse */
	const char *code;  /* expected code when it fails */
	const char *param; /* expected param, or NULL to skip the check */
};

static const struct parse_case cases[] = {
	{ .route = R_COMPLETION, .body = "{\"prompt\":\"hi\"}" },
	{ .route = R_COMPLETION, .body = "{\"prompt\":[\"hi\"],\"max_tokens\":5,\"temperature\":0,\"stop\":\"\\n\"}" },
	{ .route = R_COMPLETION, .body = "{\"prompt\":\"hi\",\"stop\":[\"a\",\"b\",\"c\",\"d\"],\"seed\":7,\"top_p\":0.5}" },
	{ .route = R_COMPLETION, .body = "{\"prompt\":\"hi\"", .status = 400, .code = "invalid_json" },
	{ .route = R_COMPLETION, .body = "", .status = 400, .code = "empty_body" },
	{ .route = R_COMPLETION, .body = "[1,2]", .status = 400, .code = "invalid_json" },
	{ .route = R_COMPLETION, .body = "{}", .status = 400, .code = "missing_field", .param = "prompt" },
	{ .route = R_COMPLETION, .body = "{\"prompt\":5}", .status = 400, .code = "invalid_type", .param = "prompt" },
	{ .route = R_COMPLETION, .body = "{\"prompt\":[\"a\",\"b\"]}", .status = 400, .code = "invalid_value", .param = "prompt" },
	{ .route = R_COMPLETION, .body = "{\"prompt\":\"a\",\"max_tokens\":\"5\"}", .status = 400, .code = "invalid_type", .param = "max_tokens" },
	{ .route = R_COMPLETION, .body = "{\"prompt\":\"a\",\"max_tokens\":-1}", .status = 400, .code = "invalid_value", .param = "max_tokens" },
	{ .route = R_COMPLETION, .body = "{\"prompt\":\"a\",\"temperature\":3}", .status = 400, .code = "invalid_value", .param = "temperature" },
	{ .route = R_COMPLETION, .body = "{\"prompt\":\"a\",\"top_p\":0}", .status = 400, .code = "invalid_value", .param = "top_p" },
	{ .route = R_COMPLETION, .body = "{\"prompt\":\"a\",\"stop\":[\"a\",\"b\",\"c\",\"d\",\"e\"]}", .status = 400, .code = "invalid_value", .param = "stop" },
	{ .route = R_COMPLETION, .body = "{\"prompt\":\"a\",\"stop\":[1]}", .status = 400, .code = "invalid_type", .param = "stop" },
	{ .route = R_COMPLETION, .body = "{\"prompt\":\"a\",\"stop\":\"\"}", .status = 400, .code = "invalid_value", .param = "stop" },
	{ .route = R_COMPLETION, .body = "{\"prompt\":\"a\",\"n\":2}", .status = 400, .code = "invalid_value", .param = "n" },
	{ .route = R_COMPLETION, .body = "{\"prompt\":\"a\",\"stream\":\"yes\"}", .status = 400, .code = "invalid_type", .param = "stream" },
	{ .route = R_COMPLETION, .body = "{\"prompt\":\"a\",\"seed\":1.5}", .status = 400, .code = "invalid_type", .param = "seed" },
	{ .route = R_COMPLETION, .body = "{\"prompt\":\"a\\u0000b\"}", .status = 400, .code = "invalid_json" }, /* jansson refuses \\u0000 */
	{ .route = R_COMPLETION, .body = "{\"prompt\":\"\xff\xfe\"}", .status = 400, .code = "invalid_utf8" },
	{ .route = R_COMPLETION, .body = "{\"prompt\":\"\xed\xa0\x80\"}", .status = 400, .code = "invalid_utf8" },
	{ .route = R_COMPLETION, .body = "{\"prompt\":\"a\",\"prompt\":\"b\"}", .status = 400, .code = "invalid_json" },
	{ .route = R_CHAT, .body = "{\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}" },
	{ .route = R_CHAT, .body = "{\"messages\":[{\"role\":\"system\",\"content\":\"s\"},{\"role\":\"user\",\"content\":[{\"type\":\"text\",\"text\":\"a\"},{\"type\":\"text\",\"text\":\"b\"}]}],\"stream\":true,\"stream_options\":{\"include_usage\":true},\"kb\":{\"top_k\":2}}" },
	{ .route = R_CHAT, .body = "{\"messages\":[{\"role\":\"assistant\",\"content\":null}],\"kb\":true}" },
	{ .route = R_CHAT, .body = "{}", .status = 400, .code = "missing_field", .param = "messages" },
	{ .route = R_CHAT, .body = "{\"messages\":{}}", .status = 400, .code = "invalid_type", .param = "messages" },
	{ .route = R_CHAT, .body = "{\"messages\":[]}", .status = 400, .code = "invalid_value", .param = "messages" },
	{ .route = R_CHAT, .body = "{\"messages\":[1]}", .status = 400, .code = "invalid_type", .param = "messages" },
	{ .route = R_CHAT, .body = "{\"messages\":[{\"content\":\"x\"}]}", .status = 400, .code = "missing_field", .param = "messages[0].role" },
	{ .route = R_CHAT, .body = "{\"messages\":[{\"role\":\"wizard\",\"content\":\"x\"}]}", .status = 400, .code = "invalid_value", .param = "messages[0].role" },
	{ .route = R_CHAT, .body = "{\"messages\":[{\"role\":\"user\",\"content\":7}]}", .status = 400, .code = "invalid_type", .param = "messages[0].content" },
	{ .route = R_CHAT, .body = "{\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":\"image_url\"}]}]}", .status = 400, .code = "invalid_value", .param = "messages[0].content" },
	{ .route = R_CHAT, .body = "{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"kb\":3}", .status = 400, .code = "invalid_type", .param = "kb" },
	{ .route = R_CHAT, .body = "{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"max_completion_tokens\":1.5}", .status = 400, .code = "invalid_type" },
	{ .route = R_EMBED, .body = "{\"input\":\"hello\"}" },
	{ .route = R_EMBED, .body = "{\"input\":[\"a\",\"b\"],\"model\":\"m\"}" },
	{ .route = R_EMBED, .body = "{}", .status = 400, .code = "missing_field", .param = "input" },
	{ .route = R_EMBED, .body = "{\"input\":[]}", .status = 400, .code = "invalid_value", .param = "input" },
	{ .route = R_EMBED, .body = "{\"input\":[\"a\",2]}", .status = 400, .code = "invalid_type", .param = "input" },
	{ .route = R_EMBED, .body = "{\"input\":\"\"}", .status = 400, .code = "invalid_value", .param = "input" },
	{ .route = R_EMBED, .body = "{\"input\":{}}", .status = 400, .code = "invalid_type", .param = "input" },
	{ .route = R_TOKENIZE, .body = "{\"content\":\"hello\",\"add_special\":true}" },
	{ .route = R_TOKENIZE, .body = "{\"content\":\"\"}" },
	{ .route = R_TOKENIZE, .body = "{\"text\":\"x\"}", .status = 400, .code = "missing_field", .param = "content" },
	{ .route = R_TOKENIZE, .body = "{\"content\":\"x\",\"add_special\":1}", .status = 400, .code = "invalid_type", .param = "add_special" },
	{ .route = R_DETOKENIZE, .body = "{\"tokens\":[1,2,3]}" },
	{ .route = R_DETOKENIZE, .body = "{\"tokens\":[]}" },
	{ .route = R_DETOKENIZE, .body = "{\"tokens\":[1,-2]}", .status = 400, .code = "invalid_value", .param = "tokens" },
	{ .route = R_DETOKENIZE, .body = "{\"tokens\":\"1 2\"}", .status = 400, .code = "invalid_type", .param = "tokens" },
	{ .route = R_KB_DOC, .body = "{\"name\":\"a\",\"text\":\"some text\"}" },
	{ .route = R_KB_DOC, .body = "{\"text\":\"t\",\"chunk_chars\":100,\"overlap_chars\":10}" },
	{ .route = R_KB_DOC, .body = "{\"name\":\"a\"}", .status = 400, .code = "missing_field", .param = "text" },
	{ .route = R_KB_DOC, .body = "{\"text\":\"\"}", .status = 400, .code = "invalid_value", .param = "text" },
	{ .route = R_KB_DOC, .body = "{\"text\":\"t\",\"chunk_chars\":100,\"overlap_chars\":100}", .status = 400, .code = "invalid_value", .param = "overlap_chars" },
	{ .route = R_KB_DOC, .body = "{\"text\":\"t\",\"chunk_chars\":1}", .status = 400, .code = "invalid_value", .param = "chunk_chars" },
	{ .route = R_KB_QUERY, .body = "{\"query\":\"q\",\"top_k\":3}" },
	{ .route = R_KB_QUERY, .body = "{\"query\":\"\"}", .status = 400, .code = "invalid_value", .param = "query" },
	{ .route = R_KB_QUERY, .body = "{\"query\":\"q\",\"top_k\":0}", .status = 400, .code = "invalid_value", .param = "top_k" },
};

static int parse(enum route r, const char *body, struct api_error *e)
{
	size_t len = strlen(body);
	int rc = -1;
	switch (r) {
	case R_COMPLETION: { struct api_completion x; rc = api_parse_completion(body, len, &x, e); if (!rc) api_completion_free(&x); break; }
	case R_CHAT: { struct api_chat x; rc = api_parse_chat(body, len, &x, e); if (!rc) api_chat_free(&x); break; }
	case R_EMBED: { struct api_embeddings x; rc = api_parse_embeddings(body, len, &x, e); if (!rc) api_embeddings_free(&x); break; }
	case R_TOKENIZE: { struct api_tokenize x; rc = api_parse_tokenize(body, len, &x, e); if (!rc) api_tokenize_free(&x); break; }
	case R_DETOKENIZE: { struct api_detokenize x; rc = api_parse_detokenize(body, len, &x, e); if (!rc) api_detokenize_free(&x); break; }
	case R_KB_DOC: { struct api_kb_doc x; rc = api_parse_kb_doc(body, len, &x, e); if (!rc) api_kb_doc_free(&x); break; }
	case R_KB_QUERY: { struct api_kb_query x; rc = api_parse_kb_query(body, len, &x, e); if (!rc) api_kb_query_free(&x); break; }
	}
	return rc;
}

static void test_parse_table(void **state)
{
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const struct parse_case *c = &cases[i];
		struct api_error e = { 0 };
		int rc = parse(c->route, c->body, &e);
		if (c->status == 0) {
			if (rc)
				print_message("case %zu: %s: unexpected error %s\n", i, c->body, e.message);
			assert_int_equal(rc, 0);
			continue;
		}
		if (rc == 0)
			print_message("case %zu: %s: parsed, want %d %s\n", i, c->body, c->status, c->code);
		assert_int_equal(rc, -1);
		assert_int_equal(e.status, c->status);
		if (strcmp(e.code, c->code))
			print_message("case %zu: %s: code %s, want %s (%s)\n", i, c->body, e.code, c->code, e.message);
		assert_string_equal(e.code, c->code);
		if (c->param)
			assert_string_equal(e.param, c->param);
		assert_true(strlen(e.message) > 0);
	}
}

static void test_fields(void **state)
{
	struct api_error e = { 0 };
	struct api_chat c;
	const char *b = "{\"messages\":[{\"role\":\"system\",\"content\":\"S\"},{\"role\":\"user\",\"content\":[{\"type\":\"text\",\"text\":\"a\"},{\"type\":\"text\",\"text\":\"b\"}]}],"
			"\"max_tokens\":9,\"temperature\":0.5,\"top_p\":0.9,\"seed\":42,\"stop\":[\"x\",\"yy\"],\"stream\":true,\"kb\":{\"top_k\":2}}";
	assert_int_equal(api_parse_chat(b, strlen(b), &c, &e), 0);
	assert_int_equal(c.n_msgs, 2);
	assert_string_equal(c.msgs[0].role, "system");
	assert_string_equal(c.msgs[1].content, "ab");
	assert_int_equal(c.g.max_tokens, 9);
	assert_true(c.g.temperature == 0.5);
	assert_true(c.g.top_p > 0.89 && c.g.top_p < 0.91);
	assert_true(c.g.has_seed);
	assert_int_equal(c.g.seed, 42);
	assert_int_equal(c.g.n_stop, 2);
	assert_string_equal(c.g.stop[1], "yy");
	assert_true(c.g.stream);
	assert_true(c.kb);
	assert_int_equal(c.kb_top_k, 2);
	api_chat_free(&c);

	struct api_completion p;
	b = "{\"prompt\":\"x\"}";
	assert_int_equal(api_parse_completion(b, strlen(b), &p, &e), 0);
	assert_int_equal(p.g.max_tokens, -1);
	assert_true(p.g.temperature == 1.0);
	assert_false(p.g.stream);
	assert_false(p.g.has_seed);
	api_completion_free(&p);

	struct api_embeddings em;
	b = "{\"input\":\"x\"}";
	assert_int_equal(api_parse_embeddings(b, strlen(b), &em, &e), 0);
	assert_false(em.input_is_array);
	assert_int_equal(em.n_input, 1);
	api_embeddings_free(&em);
}

static void test_error_json(void **state)
{
	struct api_error e = { 0 };
	api_fail(&e, 400, "invalid_request_error", "missing_field", "messages", "'%s' is required", "messages");
	char *s = api_error_json(&e);
	json_error_t je;
	json_t *o = json_loads(s, 0, &je);
	assert_non_null(o);
	json_t *err = json_object_get(o, "error");
	assert_string_equal(json_string_value(json_object_get(err, "message")), "'messages' is required");
	assert_string_equal(json_string_value(json_object_get(err, "type")), "invalid_request_error");
	assert_string_equal(json_string_value(json_object_get(err, "code")), "missing_field");
	assert_string_equal(json_string_value(json_object_get(err, "param")), "messages");
	json_decref(o);
	free(s);
	/* no param: null; invalid bytes in the message are sanitized */
	api_fail(&e, 500, "server_error", "x", NULL, "bad \xff byte");
	s = api_error_json(&e);
	o = json_loads(s, 0, &je);
	assert_non_null(o);
	assert_true(json_is_null(json_object_get(json_object_get(o, "error"), "param")));
	json_decref(o);
	free(s);
}

static void test_utf8(void **state)
{
	size_t off, n;
	assert_true(api_utf8_valid("h\xc3\xa9llo \xe2\x82\xac \xf0\x9f\x98\x80", 15, &off));
	assert_false(api_utf8_valid("ab\xc0\xaf", 4, &off));
	assert_int_equal(off, 2);
	assert_false(api_utf8_valid("\xe2\x82", 2, &off)); /* truncated */
	assert_false(api_utf8_valid("\xf4\x90\x80\x80", 4, &off)); /* > U+10FFFF */
	char *s = api_utf8_sanitize("a\xffz\xe2\x82", 5, &n);
	assert_string_equal(s, "a\xef\xbf\xbdz\xef\xbf\xbd\xef\xbf\xbd");
	assert_true(api_utf8_valid(s, n, &off));
	free(s);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse_table),
		cmocka_unit_test(test_fields),
		cmocka_unit_test(test_error_json),
		cmocka_unit_test(test_utf8),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
