/*
 * test_kb.c: the knowledge base with a deterministic bag-of-words embedder:
 * chunking (sizes, overlap, UTF-8 boundaries), ingest and query, delete,
 * reopen with the index rebuilt from SQLite, a failed embedding writes
 * nothing, a width mismatch is refused.
 */
#include <ctype.h>
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "dify-edge-core/server/api.h"
#include "dify-edge-core/server/kb.h"

#define DIM 64

/* Each word adds 1 to bucket hash(word) % DIM. */
static int bow_embed(void *arg, const char *text, float *out, int dim, char *err, size_t errlen)
{
	int *fail_after = arg;
	if (fail_after && (*fail_after)-- == 0) {
		snprintf(err, errlen, "embedder failed on purpose");
		return -EIO;
	}
	memset(out, 0, sizeof(float) * (size_t)dim);
	const char *p = text;
	while (*p) {
		while (*p && !isalnum((unsigned char)*p))
			p++;
		uint32_t h = 2166136261u;
		int n = 0;
		while (*p && isalnum((unsigned char)*p)) {
			h = (h ^ (unsigned char)tolower((unsigned char)*p)) * 16777619u;
			p++;
			n++;
		}
		if (n)
			out[h % (uint32_t)dim] += 1;
	}
	out[0] += 0.01f; /* never a zero vector */
	return 0;
}

struct chunks {
	char buf[64][256];
	int n;
	const char *text;
};

static void grab(void *arg, size_t off, size_t len)
{
	struct chunks *c = arg;
	snprintf(c->buf[c->n++], 256, "%.*s", (int)len, c->text + off);
}

static void test_chunking(void **state)
{
	struct chunks c = { .text = "aaaa bbbb cccc dddd eeee" };
	int n = kb_chunk(c.text, 10, 0, grab, &c);
	assert_int_equal(n, 3);
	assert_string_equal(c.buf[0], "aaaa bbbb ");
	assert_string_equal(c.buf[1], "cccc dddd ");
	assert_string_equal(c.buf[2], "eeee");
	memset(&c, 0, sizeof(c));
	c.text = "0123456789abcdefghij";
	n = kb_chunk(c.text, 10, 4, grab, &c);
	assert_string_equal(c.buf[0], "0123456789");
	assert_string_equal(c.buf[1], "6789abcdef");
	assert_string_equal(c.buf[2], "cdefghij");
	assert_int_equal(n, 3);
	/* multi-byte characters are never split: every chunk is valid UTF-8 */
	memset(&c, 0, sizeof(c));
	c.text = "\xc3\xa9\xc3\xa9\xc3\xa9\xe2\x82\xac\xe2\x82\xac\xe2\x82\xac\xf0\x9f\x98\x80\xf0\x9f\x98\x80";
	n = kb_chunk(c.text, 3, 1, grab, &c);
	assert_true(n >= 3);
	for (int i = 0; i < n; i++)
		assert_true(api_utf8_valid(c.buf[i], strlen(c.buf[i]), NULL));
	assert_string_equal(c.buf[0], "\xc3\xa9\xc3\xa9\xc3\xa9");
}

static char dbpath[64];

static int setup(void **state)
{
	snprintf(dbpath, sizeof(dbpath), "/tmp/test_kb.%d.sqlite", (int)getpid());
	unlink(dbpath);
	return 0;
}

static int teardown(void **state)
{
	char p[80];
	unlink(dbpath);
	snprintf(p, sizeof(p), "%s-wal", dbpath);
	unlink(p);
	snprintf(p, sizeof(p), "%s-shm", dbpath);
	unlink(p);
	return 0;
}

static struct kb *open_kb(int dim)
{
	struct kb_opts o = { .dim = dim };
	struct kb *kb;
	char err[256];
	hnsw_params_default(&o.hnsw);
	int rc = kb_open(dbpath, &o, &kb, err, sizeof(err));
	if (rc) {
		print_message("%s\n", err);
		return NULL;
	}
	assert_int_equal(kb_build_index(kb, err, sizeof(err)), 0);
	return kb;
}

static void test_ingest_query_reopen(void **state)
{
	char err[256], *js;
	int64_t id1, id2, docs, chunks;
	int nc;
	struct kb_hit hits[4];
	float q[DIM];
	struct kb *kb = open_kb(DIM);
	assert_non_null(kb);
	assert_true(kb_ready(kb));
	uint64_t g0 = kb_generation(kb);
	assert_int_equal(kb_add(kb, "cats", "Cats purr and sleep in the sun. Cats chase mice.", 0, -1, bow_embed, NULL,
				&id1, &nc, err, sizeof(err)), 0);
	assert_int_equal(nc, 1);
	assert_int_equal(kb_add(kb, "rockets", "Rockets burn fuel to reach orbit around the planet.", 0, -1, bow_embed,
				NULL, &id2, &nc, err, sizeof(err)), 0);
	assert_true(kb_generation(kb) != g0);
	kb_counts(kb, &docs, &chunks);
	assert_int_equal(docs, 2);
	assert_int_equal(chunks, 2);

	bow_embed(NULL, "rockets orbit", q, DIM, err, sizeof(err));
	int n = kb_query(kb, q, 2, 0, hits);
	assert_int_equal(n, 2);
	assert_int_equal(hits[0].doc_id, id2);
	assert_string_equal(hits[0].doc_name, "rockets");
	assert_true(hits[0].score > hits[1].score);
	kb_hits_free(hits, n);

	assert_int_equal(kb_get_json(kb, id1, &js), 0);
	assert_non_null(strstr(js, "\"name\":\"cats\""));
	assert_non_null(strstr(js, "Cats purr"));
	free(js);
	assert_int_equal(kb_get_json(kb, 999, &js), -ENOENT);
	assert_int_equal(kb_list_json(kb, &js), 0);
	assert_non_null(strstr(js, "\"rockets\""));
	free(js);

	/* a failing embedder writes nothing */
	int fail_after = 1;
	int64_t id3;
	char big[2048];
	for (size_t i = 0; i + 1 < sizeof(big); i++)
		big[i] = (char)((i % 7) ? 'a' + (int)(i % 26) : ' ');
	big[sizeof(big) - 1] = 0;
	assert_int_equal(kb_add(kb, "big", big, 100, 10, bow_embed, &fail_after, &id3, &nc, err, sizeof(err)), -EIO);
	kb_counts(kb, &docs, &chunks);
	assert_int_equal(docs, 2);
	kb_close(kb);

	/* reopen: same contents, index rebuilt from SQLite */
	kb = open_kb(DIM);
	kb_counts(kb, &docs, &chunks);
	assert_int_equal(docs, 2);
	assert_int_equal(chunks, 2);
	bow_embed(NULL, "cats mice", q, DIM, err, sizeof(err));
	n = kb_query(kb, q, 1, 0, hits);
	assert_int_equal(n, 1);
	assert_int_equal(hits[0].doc_id, id1);
	kb_hits_free(hits, n);

	/* delete: gone from SQLite and from results */
	assert_int_equal(kb_delete(kb, id1), 0);
	assert_int_equal(kb_delete(kb, id1), -ENOENT);
	n = kb_query(kb, q, 2, 0, hits);
	assert_int_equal(n, 1);
	assert_int_equal(hits[0].doc_id, id2);
	kb_hits_free(hits, n);
	kb_close(kb);

	/* a model of another width cannot use this file */
	assert_null(open_kb(DIM * 2));
	kb_close(NULL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_chunking),
		cmocka_unit_test_setup_teardown(test_ingest_query_reopen, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
