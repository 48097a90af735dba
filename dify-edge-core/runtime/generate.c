/*
 * generate.c: the prompt -> tokens -> text loop (see generate.h).
 *
 * Stop strings are matched on the text, not on tokens: the text not yet
 * handed to on_text sits in `pend`. After each piece is appended, a stop
 * string found anywhere in pend ends generation (text before it is
 * emitted). Otherwise everything is emitted except the longest suffix of pend
 * that is a proper prefix of some stop string (it may still grow into one)
 * and an unfinished UTF-8 sequence at the very end (a byte-fallback token can
 * carry half a character). A stop string can never start inside text
 * already emitted, because any such start would have been held back.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "dify-edge-core/runtime/generate.h"

#define PIECE_MAX 1024
#define PEND_MAX (PIECE_MAX + 2 * GEN_MAX_STOP_LEN + 8)

static const char *const stop_names[] = {
	[GEN_STOP_NONE] = "none",
	[GEN_STOP_EOG] = "eog",
	[GEN_STOP_STRING] = "stop",
	[GEN_STOP_LENGTH] = "length",
	[GEN_STOP_CONTEXT] = "context",
	[GEN_STOP_CALLER] = "caller",
};

const char *gen_stop_name(enum gen_stop_reason r)
{
	if ((size_t)r < sizeof(stop_names) / sizeof(stop_names[0]) && stop_names[r])
		return stop_names[r];
	return "unknown";
}

static uint64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

struct pend {
	char buf[PEND_MAX];
	size_t len;
};

/* Bytes at the end of s[0..n) that start a UTF-8 sequence not yet complete. */
static size_t utf8_incomplete_tail(const char *s, size_t n)
{
	for (size_t back = 1; back <= 4 && back <= n; back++) {
		unsigned char c = (unsigned char)s[n - back];
		if ((c & 0xC0) == 0x80)
			continue; /* continuation byte: keep looking for the lead */
		size_t need = c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : c >= 0xC0 ? 2 : 1;
		return need > back ? back : 0;
	}
	return 0;
}

/* Longest suffix of s[0..n) that is a proper prefix of a stop string. */
static size_t stop_holdback(const struct gen_params *p, const char *s, size_t n)
{
	size_t best = 0;
	for (size_t i = 0; i < p->n_stop; i++) {
		size_t sl = strlen(p->stop[i]);
		for (size_t k = sl - 1 < n ? sl - 1 : n; k > best; k--)
			if (!memcmp(s + n - k, p->stop[i], k)) {
				best = k;
				break;
			}
	}
	return best;
}

/* Length of the valid UTF-8 sequence at s (n bytes left), 0 if invalid
 * (bad lead, bad or missing continuation, overlong, surrogate, > U+10FFFF). */
static size_t utf8_valid_seq(const unsigned char *s, size_t n)
{
	size_t need;
	uint32_t min;
	if (s[0] < 0x80)
		return 1;
	if ((s[0] & 0xE0) == 0xC0) {
		need = 2;
		min = 0x80;
	} else if ((s[0] & 0xF0) == 0xE0) {
		need = 3;
		min = 0x800;
	} else if ((s[0] & 0xF8) == 0xF0) {
		need = 4;
		min = 0x10000;
	} else {
		return 0;
	}
	if (need > n)
		return 0;
	uint32_t cp = s[0] & (0x7F >> need);
	for (size_t i = 1; i < need; i++) {
		if ((s[i] & 0xC0) != 0x80)
			return 0;
		cp = (cp << 6) | (s[i] & 0x3F);
	}
	if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
		return 0;
	return need;
}

static int emit(const struct gen_params *p, const char *s, size_t n)
{
	if (!n || !p->on_text)
		return 0;
	if (!p->utf8_replace)
		return p->on_text(p->arg, s, n);
	/* valid runs as they are, each invalid byte as U+FFFD, through a small
	 * buffer so that a chunk stays one callback in the common case */
	char out[512];
	size_t o = 0;
	const unsigned char *u = (const unsigned char *)s;
	while (n) {
		size_t k = utf8_valid_seq(u, n);
		const char *src = (const char *)u;
		size_t len = k;
		if (!k) {
			src = "\xef\xbf\xbd";
			len = 3;
			k = 1;
		}
		if (o + len > sizeof(out)) {
			if (p->on_text(p->arg, out, o))
				return -1;
			o = 0;
		}
		memcpy(out + o, src, len);
		o += len;
		u += k;
		n -= k;
	}
	return o ? p->on_text(p->arg, out, o) : 0;
}

/* Append a piece; returns 1 when a stop string was found, -1 when the
 * callback asked to stop, 0 to go on. */
static int pend_add(struct pend *pd, const struct gen_params *p, const char *piece, size_t n)
{
	if (n > sizeof(pd->buf) - pd->len) {
		/* cannot happen with PIECE_MAX-bounded pieces and a bounded
		 * hold-back, but never overflow: flush first */
		if (emit(p, pd->buf, pd->len))
			return -1;
		pd->len = 0;
		if (n > sizeof(pd->buf))
			n = sizeof(pd->buf);
	}
	memcpy(pd->buf + pd->len, piece, n);
	pd->len += n;

	size_t cut = SIZE_MAX;
	for (size_t i = 0; i < p->n_stop; i++) {
		size_t sl = strlen(p->stop[i]);
		if (!sl || sl > pd->len)
			continue;
		for (size_t at = 0; at + sl <= pd->len && at < cut; at++)
			if (!memcmp(pd->buf + at, p->stop[i], sl)) {
				cut = at;
				break;
			}
	}
	if (cut != SIZE_MAX) {
		int r = emit(p, pd->buf, cut);
		pd->len = 0;
		return r ? -1 : 1;
	}
	size_t hold = stop_holdback(p, pd->buf, pd->len);
	size_t u = utf8_incomplete_tail(pd->buf, pd->len);
	if (u > hold)
		hold = u;
	size_t out = pd->len - hold;
	if (out) {
		if (emit(p, pd->buf, out))
			return -1;
		memmove(pd->buf, pd->buf + out, hold);
		pd->len = hold;
	}
	return 0;
}

int gen_run(struct model_ctx *c, struct sampler *s, const int32_t *prompt,
	    int64_t n_prompt, const struct gen_params *p, struct gen_result *res,
	    char *err, size_t errlen)
{
	struct gen_result r = { .n_prompt = n_prompt };
	struct model *m = model_ctx_model(c);
	const struct tok *tk = model_tok(m);
	struct pend pd = { .len = 0 };
	char piece[PIECE_MAX];
	bool text_started = false;
	int rc = 0;

	if (!s || !p || n_prompt < 1 || p->n_stop > GEN_MAX_STOP) {
		rc = -EINVAL;
		if (err && errlen)
			snprintf(err, errlen, "generate: %s", n_prompt < 1 ? "empty prompt" : "bad parameters");
		goto out;
	}
	for (size_t i = 0; i < p->n_stop; i++) {
		size_t sl = p->stop[i] ? strlen(p->stop[i]) : 0;
		if (sl == 0 || sl > GEN_MAX_STOP_LEN) {
			rc = -EINVAL;
			if (err && errlen)
				snprintf(err, errlen, "generate: stop string %zu is empty or longer than %d bytes",
					 i, GEN_MAX_STOP_LEN);
			goto out;
		}
	}

	/* prompt: reuse the cached prefix, evaluate at least the last token */
	uint64_t t0 = now_ns();
	int64_t keep = model_ctx_common_prefix(c, prompt, n_prompt);
	if (keep >= n_prompt)
		keep = n_prompt - 1;
	model_ctx_truncate(c, keep);
	for (int64_t i = 0; i < n_prompt; i++) {
		sampler_accept(s, prompt[i]);
		if (!tok_is_control(tk, prompt[i]))
			text_started = true;
	}
	rc = model_eval(c, prompt + keep, n_prompt - keep, keep, NULL, err, errlen);
	if (rc < 0)
		goto out;
	r.n_prompt_eval = n_prompt - keep;
	uint64_t t1 = now_ns();
	r.t_prompt_ns = t1 - t0;

	for (;;) {
		if (p->max_tokens >= 0 && r.n_gen >= p->max_tokens) {
			r.stop = GEN_STOP_LENGTH;
			break;
		}
		int32_t id = sampler_sample(s, model_ctx_logits(c));
		sampler_accept(s, id);
		r.n_gen++;
		if (p->on_token && p->on_token(p->arg, id)) {
			r.stop = GEN_STOP_CALLER;
			break;
		}
		if (!p->ignore_eog && tok_is_eog(tk, id)) {
			r.stop = GEN_STOP_EOG;
			break;
		}
		int64_t n = tok_piece(tk, id, !text_started, p->render_special, piece, sizeof(piece));
		if (n < 0)
			n = 0;
		if ((size_t)n > sizeof(piece))
			n = sizeof(piece);
		if (n > 0) {
			text_started = true;
			int st = pend_add(&pd, p, piece, (size_t)n);
			if (st) {
				r.stop = st > 0 ? GEN_STOP_STRING : GEN_STOP_CALLER;
				break;
			}
		}
		int64_t pos = model_ctx_n_past(c);
		if (pos >= model_ctx_n_ctx(c)) {
			r.stop = GEN_STOP_CONTEXT;
			break;
		}
		rc = model_eval(c, &id, 1, pos, NULL, err, errlen);
		if (rc < 0)
			goto out;
	}
	r.t_gen_ns = now_ns() - t1;
	if (r.stop != GEN_STOP_STRING && r.stop != GEN_STOP_CALLER)
		emit(p, pd.buf, pd.len);
	rc = 0;
out:
	if (res)
		*res = r;
	return rc;
}
