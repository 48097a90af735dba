/*
 * http.h: a small layer over libmicrohttpd: a daemon on a TCP address or on a
 * listening socket the caller bound (the admin Unix socket), requests
 * dispatched through a const route table, request bodies collected up to a
 * limit (413 beyond it), and replies: whole bodies, OpenAI-shaped JSON
 * errors, or streams produced by a callback (server-sent events).
 *
 * DESIGN
 * The daemon runs one thread per connection (MHD_USE_THREAD_PER_CONNECTION):
 * a handler may block -- waiting for generated tokens, for a queued job --
 * without stalling other clients, and a stream callback may wait for the
 * next token. Idle or stalled clients are closed after timeout_s (MHD's
 * connection timeout); header floods hit MHD's per-connection memory limit
 * (answered 431/413 by MHD); connections are capped by max_conns. A handler
 * that waits long calls http_touch() so the timeout counts from its last
 * progress, and polls http_client_gone() to notice a client that left.
 *
 * Route table entries match an exact path, or a prefix when .prefix is set
 * (then r->path_rest holds the remainder, e.g. a document id). A path that
 * matches with another method gets 405 with an Allow header; no match, 404.
 */
#ifndef SERVER_HTTP_H
#define SERVER_HTTP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "dify-edge-core/server/api.h"

struct http_server;
struct http_req;

typedef void (*http_handler)(void *ud, struct http_req *r);

struct http_route {
	const char *method;
	const char *path;
	bool prefix;
	http_handler fn;
	int id;          /* caller's route number (metrics) */
	unsigned flags;  /* caller's flags, opaque here */
};

struct http_opts {
	const struct http_route *routes;
	size_t n_routes;
	void *ud;                         /* passed to handlers and hooks */
	const char *host;                 /* numeric IPv4/IPv6 address; ignored with listen_fd */
	uint16_t port;
	int listen_fd;                    /* >= 0: serve this bound, listening socket */
	size_t body_limit;                /* bytes; larger bodies get 413 */
	unsigned timeout_s;               /* idle/stalled connection timeout */
	unsigned max_conns;
	/* Called before dispatch (after the body is read); return false when it
	 * answered the request itself (auth, rate limit, peer check). */
	bool (*admit)(void *ud, struct http_req *r, const struct http_route *route);
	/* Called once per request when it is finished (metrics). */
	void (*done)(void *ud, struct http_req *r);
	void (*log)(void *ud, const char *msg);
};

struct http_server *http_start(const struct http_opts *o, char *err, size_t errlen);
/* Stop accepting new connections; in-flight ones go on. */
void http_quiesce(struct http_server *h);
/* Close everything and join the threads. NULL is a no-op. */
void http_stop(struct http_server *h);
uint16_t http_port(struct http_server *h);

/* ---- request accessors ---- */
const char *http_method(struct http_req *r);
const char *http_path(struct http_req *r);
const char *http_path_rest(struct http_req *r);     /* after a prefix route */
const char *http_body(struct http_req *r, size_t *len);
const char *http_header(struct http_req *r, const char *name);
const char *http_peer(struct http_req *r);          /* "127.0.0.1" or "unix" */
int http_fd(struct http_req *r);
int http_route_id(struct http_req *r);              /* -1: no route */
int http_status(struct http_req *r);                /* status answered, 0 none */
/* The client closed its side (or the socket failed). */
bool http_client_gone(struct http_req *r);
/* The same test on a connection's fd (streams keep the fd, not the request). */
bool http_fd_gone(int fd);
/* Restart the connection's inactivity timer (long handlers, streams). */
void http_touch(struct http_req *r);
/* Disable the inactivity timeout for this connection (0) or restore it. */
void http_set_timeout(struct http_req *r, unsigned seconds);

/* ---- replies (exactly one per request) ---- */
/* Extra header on whatever reply follows (copied; up to 12). */
void http_add_header(struct http_req *r, const char *name, const char *value);
int http_reply(struct http_req *r, int status, const char *ctype, const char *body, size_t len);
int http_reply_json(struct http_req *r, int status, const char *json);
int http_reply_error(struct http_req *r, const struct api_error *e);
/* printf-style shortcut for an error reply. */
int http_reply_errorf(struct http_req *r, int status, const char *type, const char *code,
		      const char *fmt, ...) __attribute__((format(printf, 5, 6)));

/* Stream: fn fills up to max bytes of buf and returns the count (> 0), or
 * HTTP_STREAM_END when finished, HTTP_STREAM_ERROR to abort the connection.
 * fn may block. free_fn(arg) runs when the response is destroyed (also
 * when the client left early). Sent with chunked transfer encoding. */
#define HTTP_STREAM_END ((ssize_t)-1)
#define HTTP_STREAM_ERROR ((ssize_t)-2)
typedef ssize_t (*http_stream_fn)(void *arg, char *buf, size_t max);
int http_reply_stream(struct http_req *r, int status, const char *ctype, http_stream_fn fn,
		      void *arg, void (*free_fn)(void *));

#endif
