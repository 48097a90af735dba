/*
 * tokenizer_spm.c: SentencePiece-style BPE by scores (tokenizer.ggml.model
 * "llama"), the algorithm of llama.cpp's llm_tokenizer_spm.
 *
 * DESIGN
 * The fragment is escaped first: an optional leading space is prepended and
 * every space becomes U+2581 ("▁"). The escaped text is cut into symbols,
 * one per UTF-8 character (a lead byte says how many bytes follow; invalid
 * bytes are symbols of one byte, so any input works). Every pair of
 * neighbouring symbols whose joined text is a token goes into a max-heap
 * keyed by that token's score (ties: the leftmost pair first). Popping the
 * best pair merges the right symbol into the left one, unless either side
 * changed since the pair was pushed (their lengths no longer add up), and
 * pushes the two new pairs around the merged symbol. Symbols are byte ranges
 * of the escaped text, so a pair's text is contiguous and is looked up in the
 * token hash map without copying.
 *
 * Speed: one heap over a whole prompt is large and cache-unfriendly. When
 * no token has U+2581 after anything but U+2581 (tok_spm_chunks_ok(),
 * true of LLaMA's vocabulary), no merge can join a symbol to an escaped
 * space that follows something else, so the text is cut before each such
 * space and every chunk is merged on its own: the same merges in the same
 * relative order, with word-sized heaps.
 *
 * When no pair is left, each symbol is a token, or a single character that
 * is not one: that character is written as its bytes' tokens (<0xXX>, byte
 * fallback), or as one unk when a byte has no token (vocabularies without
 * byte tokens). (llama.cpp's rev_merge re-segmentation never triggers: a
 * merged symbol always is a token, since pairs are only pushed for texts
 * that are tokens.)
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "dify-edge-core/runtime/tokenizer_internal.h"

struct sym {
	int32_t prev, next; /* neighbours, -1 at the ends */
	uint32_t off, n;    /* bytes of the escaped text; n == 0: merged away */
};

struct bigram {
	float score;
	int32_t left, right;
	uint32_t size;      /* bytes of left + right when pushed */
};

/* a goes before b: higher score, then leftmost */
static bool before(const struct bigram *a, const struct bigram *b)
{
	return a->score > b->score || (a->score == b->score && a->left < b->left);
}

TOK_HEAP_DEFINE(heap, struct bigram, before)

static int try_add(const struct tok *t, const char *buf, const struct sym *s,
		   int32_t left, int32_t right, struct heap *h)
{
	if (left < 0 || right < 0)
		return 0;
	uint32_t size = s[left].n + s[right].n;
	int32_t id = tok_map_find(t, buf + s[left].off, size);
	if (id < 0)
		return 0;
	return heap_push(h, (struct bigram){ .score = t->tokens[id].score, .left = left,
					     .right = right, .size = size });
}

/* Merge and emit the symbols [start, end), linked among themselves. */
static int chunk(const struct tok *t, const char *buf, struct sym *s, int32_t start,
		 int32_t end, struct heap *h, struct tok_ids *out)
{
	int rc;
	h->n = 0;
	for (int32_t i = start + 1; i < end; i++)
		if ((rc = try_add(t, buf, s, i - 1, i, h)) < 0)
			return rc;

	while (h->n) {
		struct bigram b = heap_pop(h);
		struct sym *l = &s[b.left], *r = &s[b.right];
		if (l->n == 0 || r->n == 0 || l->n + r->n != b.size)
			continue;
		l->n += r->n;
		r->n = 0;
		l->next = r->next;
		if (r->next >= 0)
			s[r->next].prev = b.left;
		if ((rc = try_add(t, buf, s, l->prev, b.left, h)) < 0 ||
		    (rc = try_add(t, buf, s, b.left, l->next, h)) < 0)
			return rc;
	}

	for (int32_t i = start; i != -1; i = s[i].next) {
		int32_t id = tok_map_find(t, buf + s[i].off, s[i].n);
		if (id >= 0) {
			if ((rc = tok_ids_push(out, id)) < 0)
				return rc;
			continue;
		}
		/* byte fallback; a character with a byte that has no token is
		 * one unk (SentencePiece without byte_fallback) */
		bool all = true;
		for (uint32_t k = 0; k < s[i].n; k++)
			all = all && t->byte_tok[(unsigned char)buf[s[i].off + k]] >= 0;
		if (!all) {
			if (t->unk >= 0 && (rc = tok_ids_push(out, t->unk)) < 0)
				return rc;
			continue;
		}
		for (uint32_t k = 0; k < s[i].n; k++)
			if ((rc = tok_ids_push(out, t->byte_tok[(unsigned char)buf[s[i].off + k]])) < 0)
				return rc;
	}
	return 0;
}

static const char esc[3] = { '\xe2', '\x96', '\x81' }; /* U+2581 */

bool tok_spm_chunks_ok(const struct tok *t)
{
	for (int32_t id = 0; id < t->n_vocab; id++) {
		const struct tok_token *k = &t->tokens[id];
		for (uint32_t i = 1; i + 3 <= k->len; i++)
			if (!memcmp(k->s + i, esc, 3) && !(i >= 3 && !memcmp(k->s + i - 3, esc, 3)))
				return false;
	}
	return true;
}

int tok_spm_encode(const struct tok *t, const char *text, size_t len,
		   bool prefix_space, struct tok_ids *out)
{
	struct sym *s = NULL;
	struct heap h = { 0 };
	char *buf = NULL;
	int rc = 0;

	size_t n_sp = prefix_space;
	for (size_t i = 0; i < len; i++)
		n_sp += text[i] == ' ';
	size_t blen = len + (size_t)prefix_space + 2 * n_sp;
	if (blen == 0)
		goto out;
	if (blen > UINT32_MAX / 2) {
		rc = -E2BIG;
		goto out;
	}
	buf = malloc(blen);
	s = malloc(blen * sizeof(*s));
	if (!buf || !s) {
		rc = -ENOMEM;
		goto out;
	}
	size_t o = 0;
	if (prefix_space) {
		memcpy(buf, esc, 3);
		o = 3;
	}
	for (size_t i = 0; i < len; i++) {
		if (text[i] == ' ') {
			memcpy(buf + o, esc, 3);
			o += 3;
		} else {
			buf[o++] = text[i];
		}
	}

	int32_t ns = 0;
	for (size_t off = 0; off < blen;) {
		size_t n = tok_utf8_len((unsigned char)buf[off]);
		if (n > blen - off)
			n = blen - off;
		s[ns] = (struct sym){ .prev = ns - 1, .next = off + n == blen ? -1 : ns + 1,
				      .off = (uint32_t)off, .n = (uint32_t)n };
		ns++;
		off += n;
	}

	/* Independent chunks (see tok_spm_chunks_ok): cut before every escaped
	 * space that follows something else, so the heap stays word-sized. */
	int32_t start = 0;
	for (int32_t i = 1; i <= ns; i++) {
		if (i < ns) {
			if (!t->spm_chunks || s[i].n != 3 || memcmp(buf + s[i].off, esc, 3) != 0 ||
			    (s[i].off >= 3 && !memcmp(buf + s[i].off - 3, esc, 3)))
				continue;
			s[i - 1].next = -1;
			s[i].prev = -1;
		}
		if ((rc = chunk(t, buf, s, start, i, &h, out)) < 0)
			goto out;
		start = i;
	}
out:
	free(h.v);
	free(s);
	free(buf);
	return rc;
}
