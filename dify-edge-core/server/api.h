/*
 * api.h: the OpenAI-compatible request bodies, parsed and validated into
 * typed structs (jansson), and the error shape every failure is answered in:
 *   {"error":{"message":"...","type":"invalid_request_error","param":...,"code":"..."}}
 *
 * Parsing is total: any byte string yields either a filled struct or an
 * api_error with the HTTP status, the OpenAI error type, a stable code and a
 * one-line message naming the field and the problem. Nothing here touches
 * the model: limits that depend on it (context length, vocabulary) are
 * checked by the caller. This is the code the fuzz target exercises.
 *
 * Ownership: every parsed struct owns its strings; free it with its
 * api_*_free() (which accepts a zeroed struct).
 */
#ifndef SERVER_API_H
#define SERVER_API_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "dify-edge-core/server/chat.h"

#define API_MAX_STOP 4
#define API_MAX_STOP_LEN 64
#define API_MAX_INPUTS 256    /* embeddings inputs per request */
#define API_MAX_MESSAGES 1024

struct api_error {
	int status;        /* HTTP status */
	const char *type;  /* "invalid_request_error", "server_error", ... */
	const char *code;  /* stable machine code, e.g. "invalid_json" */
	char param[64];    /* offending field or "" */
	char message[256];
};

/* Fill e (printf-style message). Returns -1 for `return api_fail(...)`. */
int api_fail(struct api_error *e, int status, const char *type, const char *code,
	     const char *param, const char *fmt, ...) __attribute__((format(printf, 6, 7)));
/* The JSON body for e: malloc'd, NUL-terminated. */
char *api_error_json(const struct api_error *e);

/* Sampling and generation options common to both completion routes. */
struct api_gen {
	int64_t max_tokens;    /* -1: not given (the caller picks) */
	double temperature;    /* default 1.0 (OpenAI) */
	double top_p;          /* default 1.0 */
	int32_t top_k;         /* extension (llama.cpp); default 0 = off */
	double min_p;          /* extension; default 0 = off */
	double repeat_penalty; /* extension; default 1 = off */
	uint64_t seed;
	bool has_seed;
	char *stop[API_MAX_STOP];
	size_t n_stop;
	bool stream;
	bool include_usage;    /* stream_options.include_usage */
	bool ignore_eos;       /* extension (llama.cpp): do not stop at EOG tokens */
	char *model;           /* as sent, or NULL */
};

struct api_completion {
	struct api_gen g;
	char *prompt;
};

struct api_chat {
	struct api_gen g;
	struct chat_msg *msgs; /* role/content strings owned by this struct */
	size_t n_msgs;
	bool kb;               /* retrieve context from the knowledge base */
	int kb_top_k;          /* default 3 */
};

struct api_embeddings {
	char **input;
	size_t n_input;
	bool input_is_array;   /* answer one item per input either way */
	char *model;
};

struct api_tokenize {
	char *content;
	bool add_special;      /* prepend BOS when the vocabulary wants it; default false */
	bool with_pieces;
};

struct api_detokenize {
	int32_t *tokens;
	size_t n;
};

struct api_kb_doc {
	char *name;            /* optional; default "" */
	char *text;
	int chunk_chars;       /* 0: server default */
	int overlap_chars;     /* -1: server default */
};

struct api_kb_query {
	char *query;
	int top_k;             /* default 4, 1..100 */
};

/* Each returns 0, or -1 with e filled (status 400 unless said otherwise). */
int api_parse_completion(const char *body, size_t len, struct api_completion *out, struct api_error *e);
int api_parse_chat(const char *body, size_t len, struct api_chat *out, struct api_error *e);
int api_parse_embeddings(const char *body, size_t len, struct api_embeddings *out, struct api_error *e);
int api_parse_tokenize(const char *body, size_t len, struct api_tokenize *out, struct api_error *e);
int api_parse_detokenize(const char *body, size_t len, struct api_detokenize *out, struct api_error *e);
int api_parse_kb_doc(const char *body, size_t len, struct api_kb_doc *out, struct api_error *e);
int api_parse_kb_query(const char *body, size_t len, struct api_kb_query *out, struct api_error *e);

void api_completion_free(struct api_completion *r);
void api_chat_free(struct api_chat *r);
void api_embeddings_free(struct api_embeddings *r);
void api_tokenize_free(struct api_tokenize *r);
void api_detokenize_free(struct api_detokenize *r);
void api_kb_doc_free(struct api_kb_doc *r);
void api_kb_query_free(struct api_kb_query *r);

/* UTF-8 helpers. api_utf8_valid: whole buffer is valid UTF-8 (no overlongs,
 * no surrogates, <= U+10FFFF); *bad_off gets the first bad byte offset.
 * api_utf8_sanitize: malloc'd copy with every invalid sequence replaced by
 * U+FFFD (model output from random weights may be any bytes). */
bool api_utf8_valid(const char *s, size_t len, size_t *bad_off);
char *api_utf8_sanitize(const char *s, size_t len, size_t *out_len);

#endif
