/*
 * supserver.h: supervise's own HTTP server on a Unix socket (libmicrohttpd):
 *   GET /v1/snapshot  the latest tick: {"tick":N,"snapshot":{...},"decisions":[...]}
 *   GET /v1/stream    the same, one line per tick as it happens (NDJSON, chunked)
 *   GET /metrics      Prometheus text, produced by the supervisor's callback
 * The socket is created mode 0600. The supervisor publishes each tick with
 * supsrv_publish(); readers never block it (a slow stream reader skips ticks:
 * it always gets the newest line).
 */
#ifndef CONTROLLER_SUPSERVER_H
#define CONTROLLER_SUPSERVER_H

#include <stddef.h>

struct supsrv;

/* metrics(ud) returns a malloc'd Prometheus text (freed by the server). */
typedef char *(*supsrv_metrics_fn)(void *ud);

int supsrv_start(const char *path, supsrv_metrics_fn metrics, void *ud, struct supsrv **out, char *err,
		 size_t errlen);
/* Publish one tick's line (no newline; copied). */
void supsrv_publish(struct supsrv *s, const char *line);
/* Stop serving, end open streams, remove the socket. supsrv_stop(NULL) is a no-op. */
void supsrv_stop(struct supsrv *s);

#endif
