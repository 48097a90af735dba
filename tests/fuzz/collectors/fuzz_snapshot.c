/*
 * fuzz_snapshot.c: libFuzzer target for snap_from_json, the reader of the
 * snapshot lines that edgectl profile --json and supervise's /v1/stream
 * write and that recordings are replayed from.
 *
 * The input (NUL-terminated copy) is parsed; when the reader accepts it, the
 * snapshot is written back with snap_to_json, read again, and written
 * again: the two writes must be identical (what the reader keeps, the writer
 * writes, and reading that back changes nothing). A crash, an ASan/UBSan
 * report, a leak or a round trip that differs is a finding.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "collectors/snapshot.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char *to_json(const struct snap *s)
{
	int n = snap_to_json(s, NULL, 0);
	char *buf;

	if (n < 0)
		__builtin_trap(); /* a snapshot the reader accepted must write */
	buf = malloc((size_t)n + 1);
	if (!buf)
		return NULL;
	if (snap_to_json(s, buf, (size_t)n + 1) != n)
		__builtin_trap();
	return buf;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char err[256], *in, *a = NULL, *b = NULL;
	struct snap *s, *t;

	if (size > 1 << 20)
		return 0;
	in = malloc(size + 1);
	s = snap_new();
	t = snap_new();
	if (!in || !s || !t)
		goto out;
	memcpy(in, data, size);
	in[size] = 0;
	if (snap_from_json(s, in, err, sizeof(err)) != 0) {
		if (!err[0])
			__builtin_trap(); /* refused without saying why */
		goto out;
	}
	a = to_json(s);
	if (!a)
		goto out;
	if (snap_from_json(t, a, err, sizeof(err)) != 0)
		__builtin_trap(); /* refused its own output */
	b = to_json(t);
	if (b && strcmp(a, b))
		__builtin_trap(); /* the round trip changed the snapshot */
out:
	free(a);
	free(b);
	snap_free(t);
	snap_free(s);
	free(in);
	return 0;
}
