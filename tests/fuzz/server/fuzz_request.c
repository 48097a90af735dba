/*
 * fuzz_request.c: libFuzzer target for the server's request parsing.
 *
 * The first byte picks the route's parser (completions, chat, embeddings,
 * tokenize, detokenize, KB document, KB query); the rest is the HTTP body.
 * Every parse must either succeed -- then the parsed struct is exercised the
 * way the handlers use it (chat rendered in every template family, strings
 * walked) -- or fail with a filled error whose JSON form is valid. ASan and
 * UBSan catch the rest; LeakSanitizer checks that every path frees.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "dify-edge-core/server/api.h"
#include "dify-edge-core/server/chat.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_error(const struct api_error *e)
{
	char *j = api_error_json(e);
	if (!j || e->status < 400 || !e->code || !e->message[0])
		abort();
	free(j);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct api_error e = { 0 };
	const char *body;
	size_t len, n;
	if (size < 1)
		return 0;
	body = (const char *)data + 1;
	len = size - 1;
	switch (data[0] % 8) {
	case 0: {
		struct api_completion r;
		if (api_parse_completion(body, len, &r, &e)) {
			check_error(&e);
			break;
		}
		if (!r.prompt)
			abort();
		api_completion_free(&r);
		break;
	}
	case 1: {
		struct api_chat r;
		if (api_parse_chat(body, len, &r, &e)) {
			check_error(&e);
			break;
		}
		for (int f = 0; f < CHAT_FAMILY_COUNT; f++) {
			char *p = chat_render((enum chat_family)f, r.msgs, r.n_msgs);
			if (!p)
				abort();
			free(p);
		}
		api_chat_free(&r);
		break;
	}
	case 2: {
		struct api_embeddings r;
		if (api_parse_embeddings(body, len, &r, &e)) {
			check_error(&e);
			break;
		}
		for (size_t i = 0; i < r.n_input; i++)
			if (!r.input[i][0])
				abort();
		api_embeddings_free(&r);
		break;
	}
	case 3: {
		struct api_tokenize r;
		if (api_parse_tokenize(body, len, &r, &e))
			check_error(&e);
		else
			api_tokenize_free(&r);
		break;
	}
	case 4: {
		struct api_detokenize r;
		if (api_parse_detokenize(body, len, &r, &e))
			check_error(&e);
		else
			api_detokenize_free(&r);
		break;
	}
	case 5: {
		struct api_kb_doc r;
		if (api_parse_kb_doc(body, len, &r, &e))
			check_error(&e);
		else
			api_kb_doc_free(&r);
		break;
	}
	case 6: {
		struct api_kb_query r;
		if (api_parse_kb_query(body, len, &r, &e))
			check_error(&e);
		else
			api_kb_query_free(&r);
		break;
	}
	default: {
		/* model output of any bytes must become valid UTF-8 */
		char *s = api_utf8_sanitize(body, len, &n);
		if (!s || !api_utf8_valid(s, n, NULL))
			abort();
		free(s);
		chat_detect(body, len, len & 1);
		break;
	}
	}
	return 0;
}
