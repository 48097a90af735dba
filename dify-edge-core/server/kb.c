/*
 * kb.c: knowledge base on SQLite + HNSW (see kb.h).
 *
 * One connection (SQLITE_OPEN_FULLMUTEX) and one mutex around every
 * compound operation; the HNSW index has its own reader-writer lock, so
 * queries search concurrently and only take the mutex to read chunk texts.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>
#include <sqlite3.h>

#include "dify-edge-core/server/kb.h"

struct kb {
	pthread_mutex_t mu;
	sqlite3 *db;
	int dim;
	struct hnsw_params hp;
	struct hnsw *index;
	bool ready;
	uint64_t gen;
	int64_t n_docs, n_chunks;
};

static const char *const schema =
	"CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);"
	"CREATE TABLE IF NOT EXISTS documents(id INTEGER PRIMARY KEY, name TEXT NOT NULL,"
	" text TEXT NOT NULL, n_chunks INTEGER NOT NULL, created_at INTEGER NOT NULL);"
	"CREATE TABLE IF NOT EXISTS chunks(id INTEGER PRIMARY KEY,"
	" doc_id INTEGER NOT NULL REFERENCES documents(id) ON DELETE CASCADE,"
	" idx INTEGER NOT NULL, text TEXT NOT NULL, embedding BLOB NOT NULL);"
	"CREATE INDEX IF NOT EXISTS chunks_doc ON chunks(doc_id);";

static int exec(struct kb *kb, const char *sql, char *err, size_t errlen)
{
	char *msg = NULL;
	if (sqlite3_exec(kb->db, sql, NULL, NULL, &msg) != SQLITE_OK) {
		snprintf(err, errlen, "kb: %s", msg ? msg : sqlite3_errmsg(kb->db));
		sqlite3_free(msg);
		return -EIO;
	}
	return 0;
}

static int count_rows(struct kb *kb, const char *sql, int64_t *out)
{
	sqlite3_stmt *st;
	int rc = -EIO;
	if (sqlite3_prepare_v2(kb->db, sql, -1, &st, NULL) != SQLITE_OK)
		return -EIO;
	if (sqlite3_step(st) == SQLITE_ROW) {
		*out = sqlite3_column_int64(st, 0);
		rc = 0;
	}
	sqlite3_finalize(st);
	return rc;
}

int kb_open(const char *path, const struct kb_opts *opts, struct kb **out,
	    char *err, size_t errlen)
{
	int rc = 0;
	struct kb *kb = NULL;
	sqlite3_stmt *st = NULL;
	char dimtxt[32];

	*out = NULL;
	if (!opts || opts->dim < 1) {
		snprintf(err, errlen, "kb: %s: embedding width must be positive", path);
		return -EINVAL;
	}
	kb = calloc(1, sizeof(*kb));
	if (!kb) {
		snprintf(err, errlen, "kb: out of memory");
		return -ENOMEM;
	}
	pthread_mutex_init(&kb->mu, NULL);
	kb->dim = opts->dim;
	kb->hp = opts->hnsw;
	if (sqlite3_open_v2(path, &kb->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_FULLMUTEX,
			    NULL) != SQLITE_OK) {
		snprintf(err, errlen, "kb: %s: %s", path, kb->db ? sqlite3_errmsg(kb->db) : "cannot open");
		rc = -EIO;
		goto out;
	}
	sqlite3_busy_timeout(kb->db, 5000);
	if ((rc = exec(kb, "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL; PRAGMA foreign_keys=ON;", err, errlen)))
		goto out;
	if ((rc = exec(kb, schema, err, errlen)))
		goto out;
	/* the embedding width: recorded on first use, checked after */
	snprintf(dimtxt, sizeof(dimtxt), "%d", kb->dim);
	if (sqlite3_prepare_v2(kb->db, "SELECT value FROM meta WHERE key='dim'", -1, &st, NULL) != SQLITE_OK) {
		snprintf(err, errlen, "kb: %s: %s", path, sqlite3_errmsg(kb->db));
		rc = -EIO;
		goto out;
	}
	if (sqlite3_step(st) == SQLITE_ROW) {
		const char *v = (const char *)sqlite3_column_text(st, 0);
		if (!v || strcmp(v, dimtxt)) {
			snprintf(err, errlen, "kb: %s: built with embeddings of width %s, the model gives %d (use another --kb file)",
				 path, v ? v : "?", kb->dim);
			rc = -EINVAL;
			goto out;
		}
	} else {
		sqlite3_finalize(st);
		st = NULL;
		char sql[96];
		snprintf(sql, sizeof(sql), "INSERT INTO meta(key, value) VALUES('dim', '%d')", kb->dim);
		if ((rc = exec(kb, sql, err, errlen)))
			goto out;
	}
	if (count_rows(kb, "SELECT count(*) FROM documents", &kb->n_docs) ||
	    count_rows(kb, "SELECT count(*) FROM chunks", &kb->n_chunks)) {
		snprintf(err, errlen, "kb: %s: %s", path, sqlite3_errmsg(kb->db));
		rc = -EIO;
		goto out;
	}
out:
	sqlite3_finalize(st);
	if (rc)
		kb_close(kb);
	else
		*out = kb;
	return rc;
}

void kb_close(struct kb *kb)
{
	if (!kb)
		return;
	hnsw_free(kb->index);
	if (kb->db)
		sqlite3_close(kb->db);
	pthread_mutex_destroy(&kb->mu);
	free(kb);
}

int kb_build_index(struct kb *kb, char *err, size_t errlen)
{
	int rc = 0, s;
	sqlite3_stmt *st = NULL;
	struct hnsw *h = hnsw_new(kb->dim, &kb->hp);

	if (!h) {
		snprintf(err, errlen, "kb: bad index parameters (M %d, ef_construction %d, ef_search %d)", kb->hp.M,
			 kb->hp.ef_construction, kb->hp.ef_search);
		return -EINVAL;
	}
	pthread_mutex_lock(&kb->mu);
	if (sqlite3_prepare_v2(kb->db, "SELECT id, embedding FROM chunks ORDER BY id", -1, &st, NULL) != SQLITE_OK) {
		snprintf(err, errlen, "kb: %s", sqlite3_errmsg(kb->db));
		rc = -EIO;
		goto out;
	}
	while ((s = sqlite3_step(st)) == SQLITE_ROW) {
		int64_t id = sqlite3_column_int64(st, 0);
		const void *b = sqlite3_column_blob(st, 1);
		int n = sqlite3_column_bytes(st, 1);
		if (n != kb->dim * (int)sizeof(float)) {
			snprintf(err, errlen, "kb: chunk %lld: embedding of %d bytes, want %zu", (long long)id, n,
				 (size_t)kb->dim * sizeof(float));
			rc = -EINVAL;
			goto out;
		}
		float *v = malloc((size_t)n);
		if (!v) {
			rc = -ENOMEM;
			snprintf(err, errlen, "kb: out of memory");
			goto out;
		}
		memcpy(v, b, (size_t)n);
		rc = hnsw_add(h, id, v);
		free(v);
		if (rc && rc != -EINVAL) { /* a zero vector is skipped, not fatal */
			snprintf(err, errlen, "kb: chunk %lld: cannot index (%d)", (long long)id, rc);
			goto out;
		}
		rc = 0;
	}
	if (s != SQLITE_DONE) {
		snprintf(err, errlen, "kb: %s", sqlite3_errmsg(kb->db));
		rc = -EIO;
		goto out;
	}
	hnsw_free(kb->index);
	kb->index = h;
	h = NULL;
	kb->ready = true;
out:
	pthread_mutex_unlock(&kb->mu);
	sqlite3_finalize(st);
	hnsw_free(h);
	return rc;
}

bool kb_ready(struct kb *kb)
{
	bool r;
	pthread_mutex_lock(&kb->mu);
	r = kb->ready;
	pthread_mutex_unlock(&kb->mu);
	return r;
}

uint64_t kb_generation(struct kb *kb)
{
	uint64_t g;
	pthread_mutex_lock(&kb->mu);
	g = kb->gen;
	pthread_mutex_unlock(&kb->mu);
	return g;
}

void kb_counts(struct kb *kb, int64_t *docs, int64_t *chunks)
{
	pthread_mutex_lock(&kb->mu);
	*docs = kb->n_docs;
	*chunks = kb->n_chunks;
	pthread_mutex_unlock(&kb->mu);
}

/* ---- chunking ---- */

static size_t cp_next(const char *s, size_t i)
{
	i++;
	while (((unsigned char)s[i] & 0xC0) == 0x80)
		i++;
	return i;
}

int kb_chunk(const char *text, int chunk_chars, int overlap_chars, kb_chunk_fn fn, void *arg)
{
	size_t len = strlen(text), start = 0;
	int n = 0;

	if (chunk_chars < 1)
		chunk_chars = KB_DEFAULT_CHUNK_CHARS;
	if (overlap_chars < 0 || overlap_chars >= chunk_chars)
		overlap_chars = 0;
	while (start < len) {
		/* advance chunk_chars code points, remembering the last whitespace
		 * seen in the final fifth */
		size_t end = start, cut = 0;
		int c = 0;
		while (end < len && c < chunk_chars) {
			if (c >= chunk_chars - chunk_chars / 5 && (text[end] == ' ' || text[end] == '\n' || text[end] == '\t'))
				cut = end + 1;
			end = cp_next(text, end);
			c++;
		}
		if (end < len && cut > start)
			end = cut;
		fn(arg, start, end - start);
		n++;
		if (end >= len)
			break;
		/* next chunk starts overlap_chars code points before end */
		size_t back = end;
		for (int k = 0; k < overlap_chars && back > start; k++) {
			back--;
			while (back > start && ((unsigned char)text[back] & 0xC0) == 0x80)
				back--;
		}
		start = back > start ? back : end;
	}
	return n;
}

struct chunk_list {
	size_t *off, *len;
	int n, cap;
	bool oom;
};

static void collect(void *arg, size_t off, size_t len)
{
	struct chunk_list *l = arg;
	if (l->oom)
		return;
	if (l->n == l->cap) {
		int nc = l->cap ? l->cap * 2 : 16;
		size_t *o = realloc(l->off, (size_t)nc * sizeof(size_t));
		if (!o) {
			l->oom = true;
			return;
		}
		l->off = o;
		size_t *ln = realloc(l->len, (size_t)nc * sizeof(size_t));
		if (!ln) {
			l->oom = true;
			return;
		}
		l->len = ln;
		l->cap = nc;
	}
	l->off[l->n] = off;
	l->len[l->n] = len;
	l->n++;
}

int kb_add(struct kb *kb, const char *name, const char *text, int chunk_chars,
	   int overlap_chars, kb_embed_fn embed, void *embed_arg, int64_t *doc_id,
	   int *n_chunks, char *err, size_t errlen)
{
	int rc = 0;
	struct chunk_list cl = { 0 };
	float *emb = NULL;
	char *piece = NULL;
	sqlite3_stmt *sd = NULL, *sc = NULL;
	bool in_tx = false, locked = false;
	int64_t id = 0;

	if (chunk_chars <= 0)
		chunk_chars = KB_DEFAULT_CHUNK_CHARS;
	if (overlap_chars < 0)
		overlap_chars = chunk_chars > KB_DEFAULT_OVERLAP_CHARS * 2 ? KB_DEFAULT_OVERLAP_CHARS : chunk_chars / 4;
	kb_chunk(text, chunk_chars, overlap_chars, collect, &cl);
	if (cl.oom || !cl.n) {
		snprintf(err, errlen, cl.oom ? "kb: out of memory" : "kb: document is empty");
		rc = cl.oom ? -ENOMEM : -EINVAL;
		goto out;
	}
	/* 1. embed everything; nothing is written yet */
	emb = malloc((size_t)cl.n * (size_t)kb->dim * sizeof(float));
	if (!emb) {
		snprintf(err, errlen, "kb: out of memory for %d embeddings", cl.n);
		rc = -ENOMEM;
		goto out;
	}
	for (int i = 0; i < cl.n; i++) {
		piece = strndup(text + cl.off[i], cl.len[i]);
		if (!piece) {
			rc = -ENOMEM;
			snprintf(err, errlen, "kb: out of memory");
			goto out;
		}
		rc = embed(embed_arg, piece, emb + (size_t)i * (size_t)kb->dim, kb->dim, err, errlen);
		free(piece);
		piece = NULL;
		if (rc)
			goto out;
	}
	/* 2. one transaction for the document and all its chunks */
	pthread_mutex_lock(&kb->mu);
	locked = true;
	if ((rc = exec(kb, "BEGIN IMMEDIATE", err, errlen)))
		goto out;
	in_tx = true;
	if (sqlite3_prepare_v2(kb->db, "INSERT INTO documents(name, text, n_chunks, created_at) VALUES(?,?,?,?)", -1,
			       &sd, NULL) != SQLITE_OK ||
	    sqlite3_prepare_v2(kb->db, "INSERT INTO chunks(doc_id, idx, text, embedding) VALUES(?,?,?,?)", -1, &sc,
			       NULL) != SQLITE_OK)
		goto sqlerr;
	sqlite3_bind_text(sd, 1, name ? name : "", -1, SQLITE_STATIC);
	sqlite3_bind_text(sd, 2, text, -1, SQLITE_STATIC);
	sqlite3_bind_int(sd, 3, cl.n);
	sqlite3_bind_int64(sd, 4, (sqlite3_int64)time(NULL));
	if (sqlite3_step(sd) != SQLITE_DONE)
		goto sqlerr;
	id = sqlite3_last_insert_rowid(kb->db);
	for (int i = 0; i < cl.n; i++) {
		sqlite3_reset(sc);
		sqlite3_bind_int64(sc, 1, id);
		sqlite3_bind_int(sc, 2, i);
		sqlite3_bind_text(sc, 3, text + cl.off[i], (int)cl.len[i], SQLITE_STATIC);
		sqlite3_bind_blob(sc, 4, emb + (size_t)i * (size_t)kb->dim, kb->dim * (int)sizeof(float), SQLITE_STATIC);
		if (sqlite3_step(sc) != SQLITE_DONE)
			goto sqlerr;
	}
	if ((rc = exec(kb, "COMMIT", err, errlen)))
		goto out;
	in_tx = false;
	kb->n_docs++;
	kb->n_chunks += cl.n;
	kb->gen++;
	/* 3. index the committed chunks (their ids follow the doc's inserts) */
	if (kb->index) {
		sqlite3_stmt *q = NULL;
		if (sqlite3_prepare_v2(kb->db, "SELECT id, idx FROM chunks WHERE doc_id=?", -1, &q, NULL) == SQLITE_OK) {
			sqlite3_bind_int64(q, 1, id);
			while (sqlite3_step(q) == SQLITE_ROW) {
				int idx = sqlite3_column_int(q, 1);
				if (idx >= 0 && idx < cl.n)
					hnsw_add(kb->index, sqlite3_column_int64(q, 0), emb + (size_t)idx * (size_t)kb->dim);
			}
		}
		sqlite3_finalize(q);
	}
	*doc_id = id;
	*n_chunks = cl.n;
	goto out;
sqlerr:
	snprintf(err, errlen, "kb: %s", sqlite3_errmsg(kb->db));
	rc = -EIO;
out:
	sqlite3_finalize(sd);
	sqlite3_finalize(sc);
	if (in_tx) {
		char e2[8];
		exec(kb, "ROLLBACK", e2, sizeof(e2));
	}
	if (locked)
		pthread_mutex_unlock(&kb->mu);
	free(piece);
	free(emb);
	free(cl.off);
	free(cl.len);
	return rc;
}

int kb_delete(struct kb *kb, int64_t doc_id)
{
	int rc = 0;
	sqlite3_stmt *st = NULL;
	char e2[128];
	int64_t *ids = NULL;
	int n = 0, cap = 0;

	pthread_mutex_lock(&kb->mu);
	if (exec(kb, "BEGIN IMMEDIATE", e2, sizeof(e2))) {
		rc = -EIO;
		goto out;
	}
	if (sqlite3_prepare_v2(kb->db, "SELECT id FROM chunks WHERE doc_id=?", -1, &st, NULL) != SQLITE_OK) {
		rc = -EIO;
		goto rollback;
	}
	sqlite3_bind_int64(st, 1, doc_id);
	while (sqlite3_step(st) == SQLITE_ROW) {
		if (n == cap) {
			cap = cap ? cap * 2 : 64;
			int64_t *ni = realloc(ids, (size_t)cap * sizeof(*ids));
			if (!ni) {
				rc = -ENOMEM;
				goto rollback;
			}
			ids = ni;
		}
		ids[n++] = sqlite3_column_int64(st, 0);
	}
	sqlite3_finalize(st);
	st = NULL;
	if (sqlite3_prepare_v2(kb->db, "DELETE FROM chunks WHERE doc_id=?", -1, &st, NULL) != SQLITE_OK) {
		rc = -EIO;
		goto rollback;
	}
	sqlite3_bind_int64(st, 1, doc_id);
	if (sqlite3_step(st) != SQLITE_DONE) {
		rc = -EIO;
		goto rollback;
	}
	sqlite3_finalize(st);
	st = NULL;
	if (sqlite3_prepare_v2(kb->db, "DELETE FROM documents WHERE id=?", -1, &st, NULL) != SQLITE_OK) {
		rc = -EIO;
		goto rollback;
	}
	sqlite3_bind_int64(st, 1, doc_id);
	if (sqlite3_step(st) != SQLITE_DONE) {
		rc = -EIO;
		goto rollback;
	}
	if (sqlite3_changes(kb->db) == 0) {
		rc = -ENOENT;
		goto rollback;
	}
	if (exec(kb, "COMMIT", e2, sizeof(e2))) {
		rc = -EIO;
		goto rollback;
	}
	for (int i = 0; kb->index && i < n; i++)
		hnsw_delete(kb->index, ids[i]);
	kb->n_docs--;
	kb->n_chunks -= n;
	kb->gen++;
	goto out;
rollback:
	exec(kb, "ROLLBACK", e2, sizeof(e2));
out:
	sqlite3_finalize(st);
	pthread_mutex_unlock(&kb->mu);
	free(ids);
	return rc;
}

static json_t *doc_json(sqlite3_stmt *st, bool with_text)
{
	json_t *o = json_object();
	json_object_set_new(o, "id", json_integer(sqlite3_column_int64(st, 0)));
	json_object_set_new(o, "object", json_string("kb.document"));
	json_object_set_new(o, "name", json_string((const char *)sqlite3_column_text(st, 1)));
	json_object_set_new(o, "n_chunks", json_integer(sqlite3_column_int64(st, 2)));
	json_object_set_new(o, "created_at", json_integer(sqlite3_column_int64(st, 3)));
	if (with_text)
		json_object_set_new(o, "text", json_string((const char *)sqlite3_column_text(st, 4)));
	return o;
}

int kb_get_json(struct kb *kb, int64_t doc_id, char **json)
{
	int rc = -ENOENT;
	sqlite3_stmt *st = NULL;
	*json = NULL;
	pthread_mutex_lock(&kb->mu);
	if (sqlite3_prepare_v2(kb->db, "SELECT id, name, n_chunks, created_at, text FROM documents WHERE id=?", -1, &st,
			       NULL) != SQLITE_OK) {
		rc = -EIO;
		goto out;
	}
	sqlite3_bind_int64(st, 1, doc_id);
	if (sqlite3_step(st) == SQLITE_ROW) {
		json_t *o = doc_json(st, true);
		*json = json_dumps(o, JSON_COMPACT);
		json_decref(o);
		rc = *json ? 0 : -ENOMEM;
	}
out:
	sqlite3_finalize(st);
	pthread_mutex_unlock(&kb->mu);
	return rc;
}

int kb_list_json(struct kb *kb, char **json)
{
	int rc = 0;
	sqlite3_stmt *st = NULL;
	json_t *arr = json_array(), *o;
	*json = NULL;
	pthread_mutex_lock(&kb->mu);
	if (sqlite3_prepare_v2(kb->db, "SELECT id, name, n_chunks, created_at FROM documents ORDER BY id", -1, &st,
			       NULL) != SQLITE_OK) {
		rc = -EIO;
		goto out;
	}
	while (sqlite3_step(st) == SQLITE_ROW)
		json_array_append_new(arr, doc_json(st, false));
	o = json_pack("{s:s,s:O}", "object", "list", "data", arr);
	*json = o ? json_dumps(o, JSON_COMPACT) : NULL;
	json_decref(o);
	rc = *json ? 0 : -ENOMEM;
out:
	json_decref(arr);
	sqlite3_finalize(st);
	pthread_mutex_unlock(&kb->mu);
	return rc;
}

int kb_query(struct kb *kb, const float *q, int k, int ef, struct kb_hit *hits)
{
	struct hnsw_hit *hh;
	sqlite3_stmt *st = NULL;
	int n, out = 0;

	if (k <= 0)
		return 0;
	pthread_mutex_lock(&kb->mu);
	struct hnsw *idx = kb->index;
	pthread_mutex_unlock(&kb->mu);
	if (!idx)
		return -EAGAIN;
	hh = calloc((size_t)k, sizeof(*hh));
	if (!hh)
		return -ENOMEM;
	n = hnsw_search(idx, q, k, ef, hh);
	if (n < 0) {
		free(hh);
		return n;
	}
	pthread_mutex_lock(&kb->mu);
	if (sqlite3_prepare_v2(kb->db,
			       "SELECT c.doc_id, c.idx, c.text, d.name FROM chunks c JOIN documents d ON d.id = c.doc_id WHERE c.id=?",
			       -1, &st, NULL) != SQLITE_OK) {
		out = -EIO;
		goto unlock;
	}
	for (int i = 0; i < n; i++) {
		sqlite3_reset(st);
		sqlite3_bind_int64(st, 1, hh[i].label);
		if (sqlite3_step(st) != SQLITE_ROW)
			continue; /* deleted between search and read */
		struct kb_hit *h = &hits[out];
		h->chunk_id = hh[i].label;
		h->doc_id = sqlite3_column_int64(st, 0);
		h->chunk_index = sqlite3_column_int(st, 1);
		h->score = hh[i].score;
		h->text = strdup((const char *)sqlite3_column_text(st, 2));
		h->doc_name = strdup((const char *)sqlite3_column_text(st, 3));
		if (!h->text || !h->doc_name) {
			free(h->text);
			free(h->doc_name);
			kb_hits_free(hits, out);
			out = -ENOMEM;
			goto unlock;
		}
		out++;
	}
unlock:
	sqlite3_finalize(st);
	pthread_mutex_unlock(&kb->mu);
	free(hh);
	return out;
}

void kb_hits_free(struct kb_hit *hits, int n)
{
	for (int i = 0; i < n; i++) {
		free(hits[i].text);
		free(hits[i].doc_name);
		hits[i].text = hits[i].doc_name = NULL;
	}
}
