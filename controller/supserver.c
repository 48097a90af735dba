/*
 * supserver.c: supervise's HTTP server on a Unix socket (see supserver.h).
 *
 * DESIGN
 * libmicrohttpd with one thread per connection, listening on a Unix socket
 * we bind ourselves (MHD_OPTION_LISTEN_SOCKET), so `curl --unix-socket`
 * works. The latest line and its sequence number sit under a mutex; a
 * stream's content callback waits on a condition variable for a sequence
 * newer than the one it sent, so each stream gets every tick while it keeps
 * up, and the newest one when it does not.
 */
#include "controller/supserver.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <microhttpd.h>

#if MHD_VERSION < 0x00097002
typedef int mhd_result;
#else
typedef enum MHD_Result mhd_result;
#endif

struct supsrv {
	struct MHD_Daemon *d;
	int fd;
	char path[108];
	pthread_mutex_t mu;
	pthread_cond_t cv;
	uint64_t seq;
	char *line;
	int stopping;
	supsrv_metrics_fn metrics;
	void *ud;
};

struct stream {
	struct supsrv *s;
	uint64_t sent;
	char *pending;
	size_t plen, poff;
};

static void seterr(char *err, size_t errlen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void seterr(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	if (!err || !errlen)
		return;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
}

static ssize_t stream_cb(void *cls, uint64_t pos, char *buf, size_t max)
{
	struct stream *st = cls;
	struct supsrv *s = st->s;
	size_t n;

	(void)pos;
	if (!st->pending) {
		struct timespec ts;

		pthread_mutex_lock(&s->mu);
		while (!s->stopping && (s->seq == st->sent || !s->line)) {
			clock_gettime(CLOCK_REALTIME, &ts);
			ts.tv_sec += 1;
			pthread_cond_timedwait(&s->cv, &s->mu, &ts);
		}
		if (s->stopping) {
			pthread_mutex_unlock(&s->mu);
			return MHD_CONTENT_READER_END_OF_STREAM;
		}
		st->plen = strlen(s->line) + 1;
		st->pending = malloc(st->plen + 1);
		if (st->pending) {
			memcpy(st->pending, s->line, st->plen - 1);
			st->pending[st->plen - 1] = '\n';
			st->pending[st->plen] = 0;
		}
		st->poff = 0;
		st->sent = s->seq;
		pthread_mutex_unlock(&s->mu);
		if (!st->pending)
			return MHD_CONTENT_READER_END_WITH_ERROR;
	}
	n = st->plen - st->poff < max ? st->plen - st->poff : max;
	memcpy(buf, st->pending + st->poff, n);
	st->poff += n;
	if (st->poff == st->plen) {
		free(st->pending);
		st->pending = NULL;
	}
	return (ssize_t)n;
}

static void stream_free(void *cls)
{
	struct stream *st = cls;

	free(st->pending);
	free(st);
}

static mhd_result reply(struct MHD_Connection *c, unsigned code, const char *type, char *body)
{
	struct MHD_Response *r;
	mhd_result ret;

	r = MHD_create_response_from_buffer(strlen(body), body, MHD_RESPMEM_MUST_FREE);
	if (!r) {
		free(body);
		return MHD_NO;
	}
	MHD_add_response_header(r, "Content-Type", type);
	ret = MHD_queue_response(c, code, r);
	MHD_destroy_response(r);
	return ret;
}

static mhd_result handler(void *cls, struct MHD_Connection *c, const char *url, const char *method,
			  const char *version, const char *upload, size_t *upload_size, void **con_cls)
{
	struct supsrv *s = cls;

	(void)version;
	(void)upload;
	(void)upload_size;
	if (!*con_cls) { /* first call: headers only */
		*con_cls = s;
		return MHD_YES;
	}
	if (strcmp(method, "GET"))
		return reply(c, 405, "application/json", strdup("{\"error\":\"method not allowed\"}\n"));
	if (!strcmp(url, "/v1/snapshot")) {
		char *b;

		pthread_mutex_lock(&s->mu);
		b = s->line ? malloc(strlen(s->line) + 2) : NULL;
		if (b) {
			strcpy(b, s->line);
			strcat(b, "\n");
		}
		pthread_mutex_unlock(&s->mu);
		if (!b)
			return reply(c, 503, "application/json", strdup("{\"error\":\"no tick yet\"}\n"));
		return reply(c, 200, "application/json", b);
	}
	if (!strcmp(url, "/v1/stream")) {
		struct stream *st = calloc(1, sizeof(*st));
		struct MHD_Response *r;
		mhd_result ret;

		if (!st)
			return MHD_NO;
		st->s = s;
		pthread_mutex_lock(&s->mu);
		st->sent = s->seq ? s->seq - 1 : 0; /* start with the latest tick */
		pthread_mutex_unlock(&s->mu);
		r = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 16384, stream_cb, st, stream_free);
		if (!r) {
			free(st);
			return MHD_NO;
		}
		MHD_add_response_header(r, "Content-Type", "application/x-ndjson");
		ret = MHD_queue_response(c, 200, r);
		MHD_destroy_response(r);
		return ret;
	}
	if (!strcmp(url, "/metrics")) {
		char *t = s->metrics ? s->metrics(s->ud) : NULL;

		return reply(c, t ? 200 : 500, "text/plain; version=0.0.4", t ? t : strdup("# no metrics\n"));
	}
	return reply(c, 404, "application/json",
		     strdup("{\"error\":\"not found: try /v1/snapshot, /v1/stream or /metrics\"}\n"));
}

int supsrv_start(const char *path, supsrv_metrics_fn metrics, void *ud, struct supsrv **out, char *err,
		 size_t errlen)
{
	struct supsrv *s = calloc(1, sizeof(*s));
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int ret = 0;

	*out = NULL;
	if (!s) {
		seterr(err, errlen, "out of memory");
		return -ENOMEM;
	}
	s->fd = -1;
	pthread_mutex_init(&s->mu, NULL);
	pthread_cond_init(&s->cv, NULL);
	s->metrics = metrics;
	s->ud = ud;
	if (strlen(path) >= sizeof(sa.sun_path)) {
		seterr(err, errlen, "socket %s: path longer than %zu bytes", path, sizeof(sa.sun_path) - 1);
		ret = -ENAMETOOLONG;
		goto fail;
	}
	snprintf(s->path, sizeof(s->path), "%s", path);
	memcpy(sa.sun_path, path, strlen(path) + 1);
	s->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (s->fd < 0) {
		ret = -errno;
		seterr(err, errlen, "socket %s: %s", path, strerror(errno));
		goto fail;
	}
	unlink(path); /* a stale socket of a dead supervisor */
	{
		mode_t old = umask(0177);
		int b = bind(s->fd, (struct sockaddr *)&sa, sizeof(sa));

		umask(old);
		if (b < 0 || listen(s->fd, 16) < 0) {
			ret = -errno;
			seterr(err, errlen, "socket %s: %s", path, strerror(errno));
			goto fail;
		}
	}
	s->d = MHD_start_daemon(MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD, 0, NULL, NULL, handler,
				s, MHD_OPTION_LISTEN_SOCKET, s->fd, MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)0,
				MHD_OPTION_END);
	if (!s->d) {
		ret = -EIO;
		seterr(err, errlen, "socket %s: libmicrohttpd would not start", path);
		goto fail;
	}
	*out = s;
	return 0;
fail:
	if (s->fd >= 0) {
		close(s->fd);
		unlink(s->path);
	}
	pthread_mutex_destroy(&s->mu);
	pthread_cond_destroy(&s->cv);
	free(s);
	return ret;
}

void supsrv_publish(struct supsrv *s, const char *line)
{
	char *c = strdup(line);

	if (!c)
		return;
	pthread_mutex_lock(&s->mu);
	free(s->line);
	s->line = c;
	s->seq++;
	pthread_cond_broadcast(&s->cv);
	pthread_mutex_unlock(&s->mu);
}

void supsrv_stop(struct supsrv *s)
{
	if (!s)
		return;
	pthread_mutex_lock(&s->mu);
	s->stopping = 1;
	pthread_cond_broadcast(&s->cv);
	pthread_mutex_unlock(&s->mu);
	/* quiesce hands the listening socket back to us, so it is closed once */
	MHD_quiesce_daemon(s->d);
	MHD_stop_daemon(s->d);
	close(s->fd);
	unlink(s->path);
	pthread_mutex_destroy(&s->mu);
	pthread_cond_destroy(&s->cv);
	free(s->line);
	free(s);
}
