/*
 * generate.h: the generation loop shared by `dify-edge run`, `bench` and the
 * server: evaluate a prompt (reusing the session's cached prefix), then
 * sample, evaluate and stream tokens until an end-of-generation token, a
 * stop string, the token limit, the context end or the caller says stop.
 *
 * DESIGN
 * Text is streamed through on_text as soon as it is certain to be part of
 * the output: bytes that could still become a stop string (a suffix of the
 * output that is a prefix of some stop string, so strings split across
 * tokens are found) and an incomplete UTF-8 sequence at the end are held
 * back; every chunk handed out is valid UTF-8 when the tokens' bytes are,
 * and always with utf8_replace (invalid bytes become U+FFFD).
 * When a stop string is found, the text before it is emitted and the rest
 * is dropped. on_token sees every generated id (the EOG id too, the ids of
 * a stop string too). Nothing is allocated per token: the hold-back buffer
 * and the piece buffer are fixed arrays in the gen state on the stack.
 */
#ifndef GENERATE_H
#define GENERATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "dify-edge-core/runtime/model.h"
#include "dify-edge-core/runtime/sampler.h"

#define GEN_MAX_STOP 8
#define GEN_MAX_STOP_LEN 64

enum gen_stop_reason {
	GEN_STOP_NONE = 0,
	GEN_STOP_EOG,      /* the model produced an end-of-generation token */
	GEN_STOP_STRING,   /* a stop string appeared in the output */
	GEN_STOP_LENGTH,   /* max_tokens generated */
	GEN_STOP_CONTEXT,  /* the KV cache is full */
	GEN_STOP_CALLER,   /* a callback returned non-zero */
};
const char *gen_stop_name(enum gen_stop_reason r); /* "eog", "stop", "length", ... */

/* Callbacks return 0 to go on, non-zero to stop (GEN_STOP_CALLER). */
typedef int (*gen_text_fn)(void *arg, const char *text, size_t len);
typedef int (*gen_token_fn)(void *arg, int32_t id);

struct gen_params {
	int64_t max_tokens;                  /* < 0: until EOG or context end */
	const char *stop[GEN_MAX_STOP];      /* NUL-terminated, NULL-padded */
	size_t n_stop;                       /* strings used, each <= GEN_MAX_STOP_LEN bytes */
	bool ignore_eog;                     /* bench: do not stop on EOG */
	bool render_special;                 /* print control tokens' text */
	bool utf8_replace;                   /* hand out valid UTF-8 only: a byte
					      * that starts no valid sequence
					      * becomes U+FFFD (JSON/SSE users) */
	gen_text_fn on_text;                 /* may be NULL */
	gen_token_fn on_token;               /* may be NULL */
	void *arg;
};

struct gen_result {
	int64_t n_prompt;        /* prompt tokens */
	int64_t n_prompt_eval;   /* of which evaluated (the rest came from the cache) */
	int64_t n_gen;           /* tokens generated (sampled) */
	enum gen_stop_reason stop;
	uint64_t t_prompt_ns;    /* prompt evaluation time */
	uint64_t t_gen_ns;       /* sampling + evaluation of generated tokens */
};

/* Generate after prompt[0..n_prompt) (n_prompt >= 1; include BOS yourself).
 * The session's cached tokens that match the prompt's start are reused (at
 * least the last prompt token is evaluated again). Every prompt id and
 * every generated id is passed to sampler_accept() (the penalty window);
 * the caller resets the sampler between requests. res may be NULL.
 * Errors: model_eval's (-ENOSPC when the prompt does not fit the context),
 * -EINVAL for bad params. */
int gen_run(struct model_ctx *c, struct sampler *s, const int32_t *prompt,
	    int64_t n_prompt, const struct gen_params *p, struct gen_result *res,
	    char *err, size_t errlen);

#endif /* GENERATE_H */
