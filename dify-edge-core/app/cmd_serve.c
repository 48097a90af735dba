/*
 * cmd_serve.c: 'dify-edge serve': run the OpenAI-compatible HTTP server.
 *
 * Options are parsed into a srv_config; the server binds at once, loads the
 * model in the background (GET /health answers 503 until it is ready) and
 * serves until SIGTERM or SIGINT: then it stops accepting, lets in-flight
 * requests finish for --drain seconds, cancels what is left and exits 0.
 * Signals are blocked in every thread and taken with sigwait() here, so no
 * handler runs inside the library.
 *
 * Exit status: 0 after a clean shutdown; 2 bad usage or bad input (unknown
 * option, bad value, missing or malformed model, KB of another width);
 * 1 other failures (cannot bind, out of memory).
 */
#include <errno.h>
#include <getopt.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "dify-edge-core/app/cmds.h"
#include "dify-edge-core/server/server.h"

static void usage(FILE *f)
{
	fprintf(f,
		"usage: dify-edge serve --model-path M [options]\n"
		"\n"
		"Serve the OpenAI-compatible API (/v1/completions, /v1/chat/completions,\n"
		"/v1/embeddings, /v1/models, /tokenize, /detokenize, /v1/kb/*, /health, /metrics).\n"
		"  -m, --model-path M        GGUF model (also --model)\n"
		"      --host ADDR:PORT      listen address (default 127.0.0.1:8080; e.g. 0.0.0.0:3000,\n"
		"                            [::1]:8080, :9000 = 127.0.0.1:9000; port 0 = any free port)\n"
		"  -t, --threads T           compute threads (default: online CPUs)\n"
		"  -c, --ctx N               context positions per slot (default min(training, 4096))\n"
		"  -b, --batch N             tokens per forward pass while reading a prompt (default 64)\n"
		"  -P, --parallel P          decoding slots served at once (default 1)\n"
		"      --queue N             requests that may wait for a slot (default 16; more: 503)\n"
		"  -n, --n-predict N         max_tokens when a request gives none (default 256)\n"
		"      --alias NAME          model id in the API (default: the file name)\n"
		"      --kb FILE             knowledge base SQLite file (default :memory:, not kept)\n"
		"      --hnsw-m M            HNSW links per node (default 16)\n"
		"      --ef-construction N   (default 128)      --ef-search N (default 64)\n"
		"      --chunk-chars N       KB chunk size in characters (default 512)\n"
		"      --overlap-chars N     KB chunk overlap (default 64)\n"
		"      --admin-socket PATH   admin API on a Unix socket (mode 0600)\n"
		"      --api-key KEY         require 'Authorization: Bearer KEY' on API routes\n"
		"      --rate-limit B:C:S    GCRA per client: bursts of B+1, C requests per S seconds\n"
		"                            (redis-cell CL.THROTTLE semantics; default off)\n"
		"      --cache-entries N     response cache size (default 1024, 0 = off)\n"
		"      --cache-ttl S         response cache time to live (default 30)\n"
		"      --body-limit BYTES    largest request body (default 1048576; larger: 413)\n"
		"      --timeout S           idle/stalled connection timeout (default 30)\n"
		"      --max-conns N         simultaneous connections (default 256)\n"
		"      --drain S             on SIGTERM, seconds to let requests finish (default 10)\n"
		"  -q, --quiet               no log lines on stderr\n"
		"\n"
		"examples:\n"
		"  dify-edge serve --model-path model.gguf\n"
		"  dify-edge serve --model-path model.gguf --host 0.0.0.0:3000 -P 4 --kb kb.sqlite \\\n"
		"      --admin-socket /run/dify-edge.sock\n"
		"  curl -s localhost:8080/v1/chat/completions -d '{\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}'\n");
}

static bool quiet;

static void log_line(void *arg, const char *line)
{
	struct timespec ts;
	struct tm tm;
	(void)arg;
	if (quiet)
		return;
	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	fprintf(stderr, "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ dify-edge: %s\n", tm.tm_year + 1900, tm.tm_mon + 1,
		tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, ts.tv_nsec / 1000000, line);
}

static int bad(const char *opt, const char *val, const char *why)
{
	fprintf(stderr, "dify-edge: serve: bad %s '%s': %s\n", opt, val, why);
	return 2;
}

static bool parse_i64(const char *s, int64_t lo, int64_t hi, int64_t *out)
{
	char *end;
	errno = 0;
	long long v = strtoll(s, &end, 10);
	if (!*s || *end || errno || v < lo || v > hi)
		return false;
	*out = v;
	return true;
}

/* "ADDR:PORT", "[V6]:PORT", ":PORT", "PORT" or "ADDR". host points into buf. */
static bool parse_host(const char *arg, char *buf, size_t n, const char **host, uint16_t *port)
{
	const char *colon;
	int64_t p = 8080;
	snprintf(buf, n, "%s", arg);
	if (buf[0] == '[') {
		char *close = strchr(buf, ']');
		if (!close)
			return false;
		*close = 0;
		*host = buf + 1;
		if (close[1] == ':') {
			if (!parse_i64(close + 2, 0, 65535, &p))
				return false;
		} else if (close[1]) {
			return false;
		}
		*port = (uint16_t)p;
		return true;
	}
	colon = strrchr(buf, ':');
	if (colon && strchr(buf, ':') != colon)
		colon = NULL; /* a bare IPv6 address */
	if (colon) {
		buf[colon - buf] = 0;
		if (!parse_i64(colon + 1, 0, 65535, &p))
			return false;
		*host = buf[0] ? buf : "127.0.0.1";
	} else if (parse_i64(buf, 0, 65535, &p)) {
		*host = "127.0.0.1";
	} else {
		*host = buf;
	}
	*port = (uint16_t)p;
	return true;
}

enum {
	O_HOST = 1000, O_QUEUE, O_ALIAS, O_KB, O_HNSW_M, O_EFC, O_EFS, O_CHUNK, O_OVERLAP, O_ADMIN, O_APIKEY,
	O_RATE, O_CACHE_N, O_CACHE_TTL, O_BODY, O_TIMEOUT, O_CONNS, O_DRAIN,
};

int cmd_serve(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "model-path", required_argument, NULL, 'm' },
		{ "model", required_argument, NULL, 'm' },
		{ "host", required_argument, NULL, O_HOST },
		{ "threads", required_argument, NULL, 't' },
		{ "ctx", required_argument, NULL, 'c' },
		{ "batch", required_argument, NULL, 'b' },
		{ "parallel", required_argument, NULL, 'P' },
		{ "queue", required_argument, NULL, O_QUEUE },
		{ "n-predict", required_argument, NULL, 'n' },
		{ "alias", required_argument, NULL, O_ALIAS },
		{ "kb", required_argument, NULL, O_KB },
		{ "hnsw-m", required_argument, NULL, O_HNSW_M },
		{ "ef-construction", required_argument, NULL, O_EFC },
		{ "ef-search", required_argument, NULL, O_EFS },
		{ "chunk-chars", required_argument, NULL, O_CHUNK },
		{ "overlap-chars", required_argument, NULL, O_OVERLAP },
		{ "admin-socket", required_argument, NULL, O_ADMIN },
		{ "api-key", required_argument, NULL, O_APIKEY },
		{ "rate-limit", required_argument, NULL, O_RATE },
		{ "cache-entries", required_argument, NULL, O_CACHE_N },
		{ "cache-ttl", required_argument, NULL, O_CACHE_TTL },
		{ "body-limit", required_argument, NULL, O_BODY },
		{ "timeout", required_argument, NULL, O_TIMEOUT },
		{ "max-conns", required_argument, NULL, O_CONNS },
		{ "drain", required_argument, NULL, O_DRAIN },
		{ "quiet", no_argument, NULL, 'q' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	struct srv_config cfg;
	struct srv *srv = NULL;
	char hostbuf[256], err[512];
	int64_t v, drain_s = 10;
	int c, rc = 0;
	struct stat st;
	sigset_t sigs;

	srv_config_default(&cfg);
	quiet = false;
	optind = 1;
	opterr = 0;
	while ((c = getopt_long(argc, argv, ":m:t:c:b:P:n:qh", opts, NULL)) != -1) {
		const char *name = optind > 1 ? argv[optind - 1] : "option";
		switch (c) {
		case 'm': cfg.model_path = optarg; break;
		case O_HOST:
			if (!parse_host(optarg, hostbuf, sizeof(hostbuf), &cfg.host, &cfg.port))
				return bad("--host", optarg, "expected ADDR:PORT, e.g. 0.0.0.0:3000 or [::1]:8080");
			break;
		case 't':
			if (!parse_i64(optarg, 1, 256, &v))
				return bad("--threads", optarg, "expected 1..256");
			cfg.threads = (int)v;
			break;
		case 'c':
			if (!parse_i64(optarg, 16, 1 << 24, &v))
				return bad("--ctx", optarg, "expected 16..16777216");
			cfg.n_ctx = v;
			break;
		case 'b':
			if (!parse_i64(optarg, 1, 1 << 16, &v))
				return bad("--batch", optarg, "expected 1..65536");
			cfg.n_batch = v;
			break;
		case 'P':
			if (!parse_i64(optarg, 1, 256, &v))
				return bad("--parallel", optarg, "expected 1..256");
			cfg.parallel = (int)v;
			break;
		case O_QUEUE:
			if (!parse_i64(optarg, 0, 1 << 20, &v))
				return bad("--queue", optarg, "expected 0..1048576");
			cfg.queue = (int)v;
			break;
		case 'n':
			if (!parse_i64(optarg, 1, 1 << 24, &v))
				return bad("--n-predict", optarg, "expected a positive count");
			cfg.n_predict = v;
			break;
		case O_ALIAS: cfg.model_alias = optarg; break;
		case O_KB: cfg.kb_path = optarg; break;
		case O_HNSW_M:
			if (!parse_i64(optarg, 2, 256, &v))
				return bad("--hnsw-m", optarg, "expected 2..256");
			cfg.hnsw.M = (int)v;
			break;
		case O_EFC:
			if (!parse_i64(optarg, 1, 1 << 16, &v))
				return bad("--ef-construction", optarg, "expected 1..65536");
			cfg.hnsw.ef_construction = (int)v;
			break;
		case O_EFS:
			if (!parse_i64(optarg, 1, 1 << 16, &v))
				return bad("--ef-search", optarg, "expected 1..65536");
			cfg.hnsw.ef_search = (int)v;
			break;
		case O_CHUNK:
			if (!parse_i64(optarg, 32, 8192, &v))
				return bad("--chunk-chars", optarg, "expected 32..8192");
			cfg.kb_chunk_chars = (int)v;
			break;
		case O_OVERLAP:
			if (!parse_i64(optarg, 0, 4096, &v))
				return bad("--overlap-chars", optarg, "expected 0..4096");
			cfg.kb_overlap_chars = (int)v;
			break;
		case O_ADMIN: cfg.admin_socket = optarg; break;
		case O_APIKEY:
			if (!*optarg)
				return bad("--api-key", optarg, "must not be empty");
			cfg.api_key = optarg;
			break;
		case O_RATE: {
			long long b, n, s;
			char tail;
			if (sscanf(optarg, "%lld:%lld:%lld%c", &b, &n, &s, &tail) != 3 || b < 0 || n < 1 || s < 1)
				return bad("--rate-limit", optarg, "expected MAX_BURST:COUNT:PERIOD_S, e.g. 15:30:60");
			cfg.rl_burst = b;
			cfg.rl_count = n;
			cfg.rl_period_s = s;
			break;
		}
		case O_CACHE_N:
			if (!parse_i64(optarg, 0, 1 << 24, &v))
				return bad("--cache-entries", optarg, "expected 0..16777216");
			cfg.cache_entries = (size_t)v;
			break;
		case O_CACHE_TTL:
			if (!parse_i64(optarg, 1, 1 << 24, &v))
				return bad("--cache-ttl", optarg, "expected seconds >= 1");
			cfg.cache_ttl_s = (unsigned)v;
			break;
		case O_BODY:
			if (!parse_i64(optarg, 1024, (int64_t)1 << 32, &v))
				return bad("--body-limit", optarg, "expected 1024..4294967296 bytes");
			cfg.body_limit = (size_t)v;
			break;
		case O_TIMEOUT:
			if (!parse_i64(optarg, 1, 86400, &v))
				return bad("--timeout", optarg, "expected 1..86400 seconds");
			cfg.timeout_s = (unsigned)v;
			break;
		case O_CONNS:
			if (!parse_i64(optarg, 1, 65536, &v))
				return bad("--max-conns", optarg, "expected 1..65536");
			cfg.max_conns = (unsigned)v;
			break;
		case O_DRAIN:
			if (!parse_i64(optarg, 0, 3600, &v))
				return bad("--drain", optarg, "expected 0..3600 seconds");
			drain_s = v;
			break;
		case 'q': quiet = true; break;
		case 'h': usage(stdout); return 0;
		case ':':
			fprintf(stderr, "dify-edge: serve: %s needs a value (see --help)\n", name);
			return 2;
		default:
			fprintf(stderr, "dify-edge: serve: unknown option '%s' (see --help)\n", name);
			return 2;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "dify-edge: serve: unexpected argument '%s' (see --help)\n", argv[optind]);
		return 2;
	}
	if (!cfg.model_path) {
		fprintf(stderr, "dify-edge: serve: --model-path is required (see --help)\n");
		return 2;
	}
	if (stat(cfg.model_path, &st)) {
		fprintf(stderr, "dify-edge: serve: %s: %s\n", cfg.model_path, strerror(errno));
		return 2;
	}
	if (S_ISDIR(st.st_mode)) {
		fprintf(stderr, "dify-edge: serve: %s: is a directory\n", cfg.model_path);
		return 2;
	}
	cfg.log = log_line;

	/* every thread the server starts inherits this mask */
	sigemptyset(&sigs);
	sigaddset(&sigs, SIGTERM);
	sigaddset(&sigs, SIGINT);
	pthread_sigmask(SIG_BLOCK, &sigs, NULL);
	signal(SIGPIPE, SIG_IGN);

	if (srv_start(&cfg, &srv, err, sizeof(err))) {
		fprintf(stderr, "dify-edge: serve: %s\n", err);
		return 1;
	}
	snprintf(err, sizeof(err), "listening on %s:%u", cfg.host, (unsigned)srv_port(srv));
	log_line(NULL, err);
	/* wait for loading, but keep answering signals */
	for (;;) {
		struct timespec ts = { .tv_sec = 0, .tv_nsec = 100000000 };
		int sig = sigtimedwait(&sigs, NULL, &ts);
		if (sig == SIGTERM || sig == SIGINT) {
			log_line(NULL, "signal during load: stopping");
			goto shutdown;
		}
		int lr = srv_wait_loaded(srv, 0, err, sizeof(err));
		if (lr == 0)
			break;
		if (lr != -ETIMEDOUT) {
			fprintf(stderr, "dify-edge: serve: %s\n", err);
			srv_free(srv);
			return lr == -ENOMEM || lr == -EAGAIN || lr == -EIO ? 1 : 2;
		}
	}
	log_line(NULL, "ready");
	for (;;) {
		int sig;
		if (sigwait(&sigs, &sig))
			continue;
		if (sig == SIGTERM || sig == SIGINT)
			break;
	}
shutdown:;
	char line[128];
	snprintf(line, sizeof(line), "shutting down: draining for up to %lld s", (long long)drain_s);
	log_line(NULL, line);
	int left = srv_shutdown(srv, (int)(drain_s * 1000));
	if (left) {
		snprintf(line, sizeof(line), "drain deadline passed: cancelling %d requests", left);
		log_line(NULL, line);
	}
	srv_free(srv);
	log_line(NULL, "stopped");
	return rc;
}
