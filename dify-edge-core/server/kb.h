/*
 * kb.h: the local knowledge base: documents split into chunks, each chunk
 * embedded and stored in SQLite (WAL mode), searched through an in-memory
 * HNSW index that is rebuilt from SQLite when the server starts.
 *
 * DESIGN
 * SQLite is the truth; the index is a cache of it. Ingesting a document
 * embeds all its chunks first (slow, nothing written), then writes the
 * document and all its chunks in ONE transaction (BEGIN IMMEDIATE ... COMMIT,
 * synchronous=FULL), and only then adds them to the index. A process killed
 * at any point (SIGKILL included) leaves either the whole document or none
 * of it, and never a damaged file: that is SQLite's WAL guarantee, tested by
 * killing the server mid-ingestion. Deleting a document deletes its chunks
 * in one transaction and marks them deleted in the index.
 *
 * Embeddings are float32 blobs of `dim` values in host byte order (the file
 * records dim and refuses to open with another). kb_generation() changes
 * whenever the contents change, so caches can key on it.
 *
 * Text is chunked by characters (UTF-8 code points): chunks of chunk_chars
 * with overlap_chars shared between neighbours, cut at the last whitespace
 * in the final fifth of a chunk when there is one.
 */
#ifndef SERVER_KB_H
#define SERVER_KB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "dify-edge-core/server/hnsw.h"

struct kb;

#define KB_DEFAULT_CHUNK_CHARS 512
#define KB_DEFAULT_OVERLAP_CHARS 64

/* Embed text into out[dim] (L2-normalized or not: the index normalizes). */
typedef int (*kb_embed_fn)(void *arg, const char *text, float *out, int dim,
			   char *err, size_t errlen);

struct kb_opts {
	int dim;                 /* embedding width (the model's n_embd) */
	struct hnsw_params hnsw;
};

/* Open (creating when absent) the database at path, check its dim. The index
 * is empty until kb_build_index(). */
int kb_open(const char *path, const struct kb_opts *opts, struct kb **out,
	    char *err, size_t errlen);
void kb_close(struct kb *kb); /* NULL is a no-op */
/* Read every chunk's embedding into a fresh index. */
int kb_build_index(struct kb *kb, char *err, size_t errlen);
bool kb_ready(struct kb *kb);
uint64_t kb_generation(struct kb *kb);
void kb_counts(struct kb *kb, int64_t *docs, int64_t *chunks);

/* Chunking (exposed for tests): calls fn for each chunk [off, off+len) of
 * text in bytes; chunk and overlap are in code points. Returns the count. */
typedef void (*kb_chunk_fn)(void *arg, size_t off, size_t len);
int kb_chunk(const char *text, int chunk_chars, int overlap_chars, kb_chunk_fn fn, void *arg);

/* Ingest a document; *doc_id and *n_chunks are set on success. */
int kb_add(struct kb *kb, const char *name, const char *text, int chunk_chars,
	   int overlap_chars, kb_embed_fn embed, void *embed_arg, int64_t *doc_id,
	   int *n_chunks, char *err, size_t errlen);
/* -ENOENT when absent. */
int kb_delete(struct kb *kb, int64_t doc_id);

/* JSON (malloc'd): one document {"id","name","text","n_chunks","created_at"},
 * or the list {"object":"list","data":[...without text...]}. -ENOENT. */
int kb_get_json(struct kb *kb, int64_t doc_id, char **json);
int kb_list_json(struct kb *kb, char **json);

struct kb_hit {
	int64_t chunk_id, doc_id;
	int chunk_index;
	float score;
	char *doc_name; /* malloc'd */
	char *text;     /* malloc'd */
};
/* Top k chunks for query vector q[dim]; returns the count, hits owned by the
 * caller (kb_hits_free). */
int kb_query(struct kb *kb, const float *q, int k, int ef, struct kb_hit *hits);
void kb_hits_free(struct kb_hit *hits, int n);

#endif
