/*
 * bench_ttft.c: time to first token of streamed completions, seen from the
 * client: C concurrent connections each POST a streamed /v1/completions
 * request and time the arrival of the first "data: {" event (the first
 * generated text: completion streams have no role event) and of the end.
 * Repeats R rounds; prints p50/p99 of TTFT and of the whole request.
 *
 * usage: bench-ttft --port P [--host 127.0.0.1] [--concurrency C] [--rounds R]
 *                   [--max-tokens N] [--prompt TEXT]
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

struct conf {
	const char *host, *prompt;
	int port, max_tokens;
};

struct shot {
	const struct conf *c;
	double ttft, total;
	int ok;
};

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void *one(void *arg)
{
	struct shot *s = arg;
	const struct conf *c = s->c;
	char body[512], req[1024], buf[65536];
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons((uint16_t)c->port) };
	int fd = socket(AF_INET, SOCK_STREAM, 0), one_ = 1;
	size_t have = 0;
	double t0;

	s->ok = 0;
	if (fd < 0)
		return NULL;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one_, sizeof(one_));
	inet_pton(AF_INET, c->host, &sa.sin_addr);
	int bl = snprintf(body, sizeof(body),
			  "{\"prompt\":\"%s\",\"max_tokens\":%d,\"ignore_eos\":true,\"temperature\":0.8,\"stream\":true}",
			  c->prompt, c->max_tokens);
	int rl = snprintf(req, sizeof(req),
			  "POST /v1/completions HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\n"
			  "Content-Length: %d\r\nConnection: close\r\n\r\n%s",
			  c->host, bl, body);
	t0 = now_s();
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) || write(fd, req, (size_t)rl) != rl)
		goto out;
	s->ttft = -1;
	for (;;) {
		ssize_t n = read(fd, buf + have, sizeof(buf) - 1 - have);
		if (n <= 0)
			break;
		have += (size_t)n;
		buf[have] = 0;
		if (s->ttft < 0) {
			char *hdr_end = strstr(buf, "\r\n\r\n");
			if (hdr_end && strstr(hdr_end, "data: {"))
				s->ttft = now_s() - t0;
		}
		if (strstr(buf, "data: [DONE]")) {
			s->ok = s->ttft >= 0;
			break;
		}
		if (have > sizeof(buf) / 2) { /* keep the tail only */
			memmove(buf, buf + have - 64, 64);
			have = 64;
		}
	}
	s->total = now_s() - t0;
out:
	close(fd);
	return NULL;
}

static int cmp(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

static double pct(double *v, int n, double p)
{
	int i = (int)(p * n + 0.999999) - 1;
	if (i < 0)
		i = 0;
	if (i >= n)
		i = n - 1;
	return v[i];
}

int main(int argc, char **argv)
{
	struct conf c = { .host = "127.0.0.1", .prompt = "Once upon a time there was", .max_tokens = 32 };
	int conc = 1, rounds = 10;
	for (int i = 1; i + 1 < argc; i += 2) {
		if (!strcmp(argv[i], "--port")) c.port = atoi(argv[i + 1]);
		else if (!strcmp(argv[i], "--host")) c.host = argv[i + 1];
		else if (!strcmp(argv[i], "--concurrency")) conc = atoi(argv[i + 1]);
		else if (!strcmp(argv[i], "--rounds")) rounds = atoi(argv[i + 1]);
		else if (!strcmp(argv[i], "--max-tokens")) c.max_tokens = atoi(argv[i + 1]);
		else if (!strcmp(argv[i], "--prompt")) c.prompt = argv[i + 1];
		else {
			fprintf(stderr, "bench-ttft: unknown option %s\n", argv[i]);
			return 2;
		}
	}
	if (c.port <= 0 || conc < 1 || conc > 1024 || rounds < 1) {
		fprintf(stderr, "usage: bench-ttft --port P [--concurrency C] [--rounds R] [--max-tokens N]\n");
		return 2;
	}
	int total = conc * rounds, n = 0, failed = 0;
	double *ttft = malloc(sizeof(double) * (size_t)total), *lat = malloc(sizeof(double) * (size_t)total);
	struct shot *s = calloc((size_t)conc, sizeof(*s));
	pthread_t *th = calloc((size_t)conc, sizeof(*th));
	if (!ttft || !lat || !s || !th)
		return 1;
	for (int r = 0; r < rounds; r++) {
		for (int i = 0; i < conc; i++) {
			s[i].c = &c;
			pthread_create(&th[i], NULL, one, &s[i]);
		}
		for (int i = 0; i < conc; i++) {
			pthread_join(th[i], NULL);
			if (s[i].ok) {
				ttft[n] = s[i].ttft;
				lat[n] = s[i].total;
				n++;
			} else {
				failed++;
			}
		}
	}
	if (!n) {
		fprintf(stderr, "bench-ttft: every request failed\n");
		return 1;
	}
	qsort(ttft, (size_t)n, sizeof(double), cmp);
	qsort(lat, (size_t)n, sizeof(double), cmp);
	/* one Markdown row: concurrency | requests | ttft p50 | ttft p99 | total p50 | total p99 | failed */
	printf("| %d | %d | %.1f | %.1f | %.1f | %.1f | %d |\n", conc, n, pct(ttft, n, 0.5) * 1e3, pct(ttft, n, 0.99) * 1e3,
	       pct(lat, n, 0.5) * 1e3, pct(lat, n, 0.99) * 1e3, failed);
	free(ttft);
	free(lat);
	free(s);
	free(th);
	return failed ? 1 : 0;
}
