/*
 * http.c: libmicrohttpd daemon, route dispatch, body limits and replies
 * (see http.h).
 *
 * Request life in MHD: the access handler is called first with no body
 * (we allocate the http_req and, when Content-Length already exceeds the
 * limit, answer 413 at once), then once per body piece (appended up to the
 * limit), then a last time with no data (dispatch). The request-completed
 * callback runs when the connection is done with the request, also when
 * the client vanished mid-way: that is where the done hook (metrics) runs
 * and the http_req is freed.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <microhttpd.h>

#include "dify-edge-core/server/http.h"

#define HTTP_MAX_HDRS 12

struct http_server {
	struct http_opts o;
	struct MHD_Daemon *d;
	uint16_t port;
	bool quiesced;
	int quiesced_fd; /* the listen socket MHD handed back; closed after stop */
};

struct http_req {
	struct http_server *h;
	struct MHD_Connection *conn;
	const char *method, *url;
	const struct http_route *route;
	const char *rest;
	bool method_mismatch;
	char *body;
	size_t len, cap;
	bool too_big, answered;
	int status;
	char peer[64];
	int fd;
	int n_hdr;
	char *hdr_name[HTTP_MAX_HDRS], *hdr_val[HTTP_MAX_HDRS];
};

static void hlog(struct http_server *h, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void hlog(struct http_server *h, const char *fmt, ...)
{
	char buf[512];
	va_list ap;
	if (!h->o.log)
		return;
	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	h->o.log(h->o.ud, buf);
}

static void mhd_logger(void *cls, const char *fmt, va_list ap) __attribute__((format(printf, 2, 0)));
static void mhd_logger(void *cls, const char *fmt, va_list ap)
{
	struct http_server *h = cls;
	char buf[512];
	size_t n;
	if (!h->o.log)
		return;
	vsnprintf(buf, sizeof(buf), fmt, ap);
	n = strlen(buf);
	while (n && (buf[n - 1] == '\n' || buf[n - 1] == '\r'))
		buf[--n] = 0;
	h->o.log(h->o.ud, buf);
}

/* ---- accessors ---- */

const char *http_method(struct http_req *r) { return r->method; }
const char *http_path(struct http_req *r) { return r->url; }
const char *http_path_rest(struct http_req *r) { return r->rest ? r->rest : ""; }
int http_fd(struct http_req *r) { return r->fd; }
const char *http_peer(struct http_req *r) { return r->peer; }
int http_status(struct http_req *r) { return r->status; }
int http_route_id(struct http_req *r) { return r->route ? r->route->id : -1; }

const char *http_body(struct http_req *r, size_t *len)
{
	if (len)
		*len = r->len;
	return r->body ? r->body : "";
}

const char *http_header(struct http_req *r, const char *name)
{
	return MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, name);
}

bool http_client_gone(struct http_req *r)
{
	return http_fd_gone(r->fd);
}

bool http_fd_gone(int fd)
{
	struct pollfd p = { .fd = fd, .events = POLLIN | POLLRDHUP };
	if (fd < 0)
		return false;
	if (poll(&p, 1, 0) <= 0)
		return false;
	if (p.revents & (POLLRDHUP | POLLHUP | POLLERR | POLLNVAL))
		return true;
	if (p.revents & POLLIN) {
		char c;
		ssize_t n = recv(fd, &c, 1, MSG_PEEK | MSG_DONTWAIT);
		return n == 0; /* orderly shutdown by the peer */
	}
	return false;
}

void http_touch(struct http_req *r)
{
	MHD_set_connection_option(r->conn, MHD_CONNECTION_OPTION_TIMEOUT, r->h->o.timeout_s);
}

void http_set_timeout(struct http_req *r, unsigned seconds)
{
	MHD_set_connection_option(r->conn, MHD_CONNECTION_OPTION_TIMEOUT, seconds);
}

/* ---- replies ---- */

void http_add_header(struct http_req *r, const char *name, const char *value)
{
	if (r->n_hdr >= HTTP_MAX_HDRS)
		return;
	r->hdr_name[r->n_hdr] = strdup(name);
	r->hdr_val[r->n_hdr] = strdup(value);
	if (!r->hdr_name[r->n_hdr] || !r->hdr_val[r->n_hdr]) {
		free(r->hdr_name[r->n_hdr]);
		free(r->hdr_val[r->n_hdr]);
		return;
	}
	r->n_hdr++;
}

static int queue(struct http_req *r, int status, const char *ctype, struct MHD_Response *resp)
{
	enum MHD_Result ok;
	if (!resp)
		return -ENOMEM;
	if (ctype)
		MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, ctype);
	for (int i = 0; i < r->n_hdr; i++)
		MHD_add_response_header(resp, r->hdr_name[i], r->hdr_val[i]);
	ok = MHD_queue_response(r->conn, (unsigned)status, resp);
	MHD_destroy_response(resp);
	if (ok != MHD_YES)
		return -EIO;
	r->answered = true;
	r->status = status;
	return 0;
}

int http_reply(struct http_req *r, int status, const char *ctype, const char *body, size_t len)
{
	if (r->answered)
		return -EALREADY;
	return queue(r, status, ctype,
		     MHD_create_response_from_buffer(len, (void *)body, MHD_RESPMEM_MUST_COPY));
}

int http_reply_json(struct http_req *r, int status, const char *json)
{
	return http_reply(r, status, "application/json", json, strlen(json));
}

int http_reply_error(struct http_req *r, const struct api_error *e)
{
	char *s = api_error_json(e);
	int rc;
	if (!s)
		return http_reply(r, 500, "application/json",
				  "{\"error\":{\"message\":\"out of memory\",\"type\":\"server_error\",\"param\":null,\"code\":\"out_of_memory\"}}",
				  92);
	rc = http_reply_json(r, e->status, s);
	free(s);
	return rc;
}

int http_reply_errorf(struct http_req *r, int status, const char *type, const char *code,
		      const char *fmt, ...)
{
	struct api_error e = { .status = status, .type = type, .code = code };
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(e.message, sizeof(e.message), fmt, ap);
	va_end(ap);
	return http_reply_error(r, &e);
}

struct stream_ctx {
	http_stream_fn fn;
	void *arg;
	void (*free_fn)(void *);
	struct MHD_Connection *conn; /* outlives its response */
	unsigned timeout_s;
};

static ssize_t stream_reader(void *cls, uint64_t pos, char *buf, size_t max)
{
	struct stream_ctx *s = cls;
	ssize_t n;
	(void)pos;
	n = s->fn(s->arg, buf, max);
	if (n == HTTP_STREAM_END)
		return MHD_CONTENT_READER_END_OF_STREAM;
	if (n < 0)
		return MHD_CONTENT_READER_END_WITH_ERROR;
	/* progress: the inactivity timeout counts from here (a client that
	 * stops reading is closed timeout_s after the last chunk we made) */
	MHD_set_connection_option(s->conn, MHD_CONNECTION_OPTION_TIMEOUT, s->timeout_s);
	return n;
}

static void stream_free(void *cls)
{
	struct stream_ctx *s = cls;
	if (s->free_fn)
		s->free_fn(s->arg);
	free(s);
}

int http_reply_stream(struct http_req *r, int status, const char *ctype, http_stream_fn fn,
		      void *arg, void (*free_fn)(void *))
{
	struct stream_ctx *s;
	struct MHD_Response *resp;
	if (r->answered) {
		if (free_fn)
			free_fn(arg);
		return -EALREADY;
	}
	s = malloc(sizeof(*s));
	if (!s) {
		if (free_fn)
			free_fn(arg);
		return -ENOMEM;
	}
	s->fn = fn;
	s->arg = arg;
	s->free_fn = free_fn;
	s->conn = r->conn;
	s->timeout_s = r->h->o.timeout_s;
	resp = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 16384, stream_reader, s, stream_free);
	if (!resp) {
		stream_free(s);
		return -ENOMEM;
	}
	MHD_add_response_header(resp, "Cache-Control", "no-cache");
	MHD_add_response_header(resp, "X-Accel-Buffering", "no");
	return queue(r, status, ctype, resp);
}

/* ---- dispatch ---- */

static void route_match(struct http_server *h, struct http_req *r)
{
	const struct http_route *any = NULL;
	for (size_t i = 0; i < h->o.n_routes; i++) {
		const struct http_route *rt = &h->o.routes[i];
		const char *rest = NULL;
		if (rt->prefix) {
			size_t n = strlen(rt->path);
			if (strncmp(r->url, rt->path, n) || !r->url[n])
				continue;
			rest = r->url + n;
		} else if (strcmp(r->url, rt->path)) {
			continue;
		}
		if (!strcmp(r->method, rt->method)) {
			r->route = rt;
			r->rest = rest;
			return;
		}
		any = rt;
	}
	r->method_mismatch = any != NULL;
}

static void reply_405(struct http_server *h, struct http_req *r)
{
	char allow[128] = "";
	size_t n = 0;
	for (size_t i = 0; i < h->o.n_routes; i++) {
		const struct http_route *rt = &h->o.routes[i];
		bool m = rt->prefix ? !strncmp(r->url, rt->path, strlen(rt->path)) && r->url[strlen(rt->path)]
				    : !strcmp(r->url, rt->path);
		if (m && n + strlen(rt->method) + 3 < sizeof(allow))
			n += (size_t)snprintf(allow + n, sizeof(allow) - n, "%s%s", n ? ", " : "", rt->method);
	}
	http_add_header(r, "Allow", allow);
	http_reply_errorf(r, 405, "invalid_request_error", "method_not_allowed", "%s %s: method not allowed (allowed: %s)",
			  r->method, r->url, allow);
}

static void reply_413(struct http_server *h, struct http_req *r)
{
	http_add_header(r, "Connection", "close");
	http_reply_errorf(r, 413, "invalid_request_error", "body_too_large",
			  "request body exceeds the limit of %zu bytes", h->o.body_limit);
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url,
				  const char *method, const char *version, const char *upload,
				  size_t *upload_size, void **con_cls)
{
	struct http_server *h = cls;
	struct http_req *r = *con_cls;
	(void)version;

	if (!r) {
		const union MHD_ConnectionInfo *ci;
		const char *cl;
		r = calloc(1, sizeof(*r));
		if (!r)
			return MHD_NO;
		r->h = h;
		r->conn = c;
		r->method = method;
		r->url = url;
		r->fd = -1;
		snprintf(r->peer, sizeof(r->peer), "unknown");
		ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
		if (ci && ci->client_addr) {
			const struct sockaddr *sa = ci->client_addr;
			if (sa->sa_family == AF_INET)
				inet_ntop(AF_INET, &((const struct sockaddr_in *)(const void *)sa)->sin_addr, r->peer, sizeof(r->peer));
			else if (sa->sa_family == AF_INET6)
				inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)(const void *)sa)->sin6_addr, r->peer, sizeof(r->peer));
			else if (sa->sa_family == AF_UNIX)
				snprintf(r->peer, sizeof(r->peer), "unix");
		}
		ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
		if (ci)
			r->fd = ci->connect_fd;
		*con_cls = r;
		route_match(h, r);
		cl = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
		if (cl && strtoull(cl, NULL, 10) > h->o.body_limit) {
			r->too_big = true;
			reply_413(h, r);
		}
		return MHD_YES;
	}
	if (*upload_size) {
		if (!r->too_big) {
			if (r->len + *upload_size > h->o.body_limit) {
				r->too_big = true;
				free(r->body);
				r->body = NULL;
				r->len = r->cap = 0;
			} else {
				if (r->len + *upload_size + 1 > r->cap) {
					size_t nc = r->cap ? r->cap : 4096;
					while (nc < r->len + *upload_size + 1)
						nc *= 2;
					char *nb = realloc(r->body, nc);
					if (!nb)
						return MHD_NO;
					r->body = nb;
					r->cap = nc;
				}
				memcpy(r->body + r->len, upload, *upload_size);
				r->len += *upload_size;
				r->body[r->len] = 0;
			}
		}
		*upload_size = 0;
		return MHD_YES;
	}
	if (r->answered)
		return MHD_YES;
	if (r->too_big) {
		reply_413(h, r);
		return MHD_YES;
	}
	if (!r->route) {
		if (r->method_mismatch)
			reply_405(h, r);
		else
			http_reply_errorf(r, 404, "invalid_request_error", "not_found", "%s %s: no such route", method, url);
		return MHD_YES;
	}
	if (!h->o.admit || h->o.admit(h->o.ud, r, r->route))
		r->route->fn(h->o.ud, r);
	if (!r->answered)
		http_reply_errorf(r, 500, "server_error", "no_reply", "%s %s: the handler gave no reply", method, url);
	return r->answered ? MHD_YES : MHD_NO;
}

static void on_completed(void *cls, struct MHD_Connection *c, void **con_cls,
			 enum MHD_RequestTerminationCode toe)
{
	struct http_server *h = cls;
	struct http_req *r = *con_cls;
	(void)c;
	(void)toe;
	if (!r)
		return;
	if (h->o.done)
		h->o.done(h->o.ud, r);
	for (int i = 0; i < r->n_hdr; i++) {
		free(r->hdr_name[i]);
		free(r->hdr_val[i]);
	}
	free(r->body);
	free(r);
	*con_cls = NULL;
}

struct http_server *http_start(const struct http_opts *o, char *err, size_t errlen)
{
	struct http_server *h = calloc(1, sizeof(*h));
	unsigned flags = MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_POLL |
			 MHD_USE_ITC | MHD_USE_ERROR_LOG;
	struct sockaddr_storage ss;
	const union MHD_DaemonInfo *di;

	if (!h) {
		snprintf(err, errlen, "http: out of memory");
		return NULL;
	}
	h->o = *o;
	memset(&ss, 0, sizeof(ss));
	if (o->listen_fd < 0) {
		struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;
		struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;
		if (inet_pton(AF_INET, o->host, &s4->sin_addr) == 1) {
			s4->sin_family = AF_INET;
			s4->sin_port = htons(o->port);
		} else if (inet_pton(AF_INET6, o->host, &s6->sin6_addr) == 1) {
			s6->sin6_family = AF_INET6;
			s6->sin6_port = htons(o->port);
			flags |= MHD_USE_IPv6;
		} else {
			snprintf(err, errlen, "http: '%s' is not a numeric IPv4 or IPv6 address", o->host);
			free(h);
			return NULL;
		}
	}
	errno = 0;
	if (o->listen_fd >= 0)
		h->d = MHD_start_daemon(flags, 0, NULL, NULL, on_request, h,
					MHD_OPTION_EXTERNAL_LOGGER, mhd_logger, h,
					MHD_OPTION_LISTEN_SOCKET, (MHD_socket)o->listen_fd,
					MHD_OPTION_CONNECTION_TIMEOUT, (unsigned int)o->timeout_s,
					MHD_OPTION_CONNECTION_LIMIT, (unsigned int)o->max_conns,
					MHD_OPTION_NOTIFY_COMPLETED, on_completed, h,
					MHD_OPTION_END);
	else
		h->d = MHD_start_daemon(flags, o->port, NULL, NULL, on_request, h,
					MHD_OPTION_EXTERNAL_LOGGER, mhd_logger, h,
					MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&ss,
					MHD_OPTION_CONNECTION_TIMEOUT, (unsigned int)o->timeout_s,
					MHD_OPTION_CONNECTION_LIMIT, (unsigned int)o->max_conns,
					MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)65536,
					MHD_OPTION_LISTENING_ADDRESS_REUSE, (unsigned int)1,
					MHD_OPTION_NOTIFY_COMPLETED, on_completed, h,
					MHD_OPTION_END);
	if (!h->d) {
		if (o->listen_fd >= 0)
			snprintf(err, errlen, "http: cannot serve the given socket: %s", errno ? strerror(errno) : "libmicrohttpd refused");
		else
			snprintf(err, errlen, "http: cannot listen on %s:%u: %s", o->host, (unsigned)o->port,
				 errno ? strerror(errno) : "libmicrohttpd refused");
		free(h);
		return NULL;
	}
	di = MHD_get_daemon_info(h->d, MHD_DAEMON_INFO_BIND_PORT);
	h->port = di ? di->port : o->port;
	hlog(h, "http: serving %s", o->listen_fd >= 0 ? "a given socket" : o->host);
	return h;
}

uint16_t http_port(struct http_server *h)
{
	return h->port;
}

void http_quiesce(struct http_server *h)
{
	if (!h || h->quiesced)
		return;
	h->quiesced = true;
	/* the returned listen socket must stay open until MHD_stop_daemon */
	h->quiesced_fd = (int)MHD_quiesce_daemon(h->d);
}

void http_stop(struct http_server *h)
{
	if (!h)
		return;
	MHD_stop_daemon(h->d);
	if (h->quiesced && h->quiesced_fd >= 0 && h->o.listen_fd < 0)
		close(h->quiesced_fd);
	free(h);
}
