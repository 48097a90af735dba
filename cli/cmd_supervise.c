/*
 * cmd_supervise.c: 'edgectl supervise [options] -- dify-edge serve ...':
 * options and config file in, controller/supervise.c does the work.
 * Exit status: 0 after SIGTERM/SIGINT with everything reverted, 1 on a
 * failure, 2 on bad usage or bad input (config typo, cgroup outside the
 * hierarchy, missing core command).
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cmds.h"
#include "controller/config.h"
#include "controller/state.h"
#include "controller/supervise.h"

static void usage(FILE *f)
{
	fprintf(f,
		"usage: edgectl supervise [--config FILE] [--cgroup NAME] [--dry-run] [--socket PATH]\n"
		"                         [--audit-log PATH] [--state FILE] [--interval D]\n"
		"                         -- dify-edge serve [SERVE OPTIONS]\n"
		"       edgectl supervise --print-config\n"
		"\n"
		"Run the core in its cgroup (created, or adopted when it exists) and tune its\n"
		"thread count, worker placement and CPU bandwidth every tick; restart it when it\n"
		"dies or fails /health; on SIGTERM or SIGINT stop it and revert every change.\n"
		"  --config FILE     INI file (every key: --print-config, docs/controller.md)\n"
		"  --cgroup NAME     the core's cgroup (default [general] cgroup, edge/core)\n"
		"  --dry-run         decide and log, change nothing (no cgroup is made)\n"
		"  --socket PATH     this supervisor's socket: GET /v1/snapshot, /v1/stream, /metrics\n"
		"  --audit-log PATH  decisions as JSON lines\n"
		"  --state FILE      revert state (default $EDGECTL_STATE or %s)\n"
		"  --interval D      tick length (default 1s)\n"
		"  --print-config    print every config key with its default and meaning\n"
		"\n"
		"examples:\n"
		"  edgectl supervise -- dify-edge serve --model-path m.gguf --host 127.0.0.1:3000\n"
		"  curl --unix-socket /run/edgectl/supervise.sock http://x/v1/stream\n",
		CSTATE_DEFAULT_PATH);
}

static int set_str(char *dst, const char *v, const char *what)
{
	if (strlen(v) >= CCFG_STR) {
		fprintf(stderr, "edgectl: supervise: %s '%.40s...': longer than %d bytes\n", what, v, CCFG_STR - 1);
		return -1;
	}
	snprintf(dst, CCFG_STR, "%s", v);
	return 0;
}

int cmd_supervise(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "cgroup", required_argument, NULL, 'g' },
		{ "dry-run", no_argument, NULL, 'n' },
		{ "socket", required_argument, NULL, 'S' },
		{ "audit-log", required_argument, NULL, 'L' },
		{ "state", required_argument, NULL, 's' },
		{ "interval", required_argument, NULL, 'i' },
		{ "print-config", no_argument, NULL, 'P' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	struct sup_opts so = { 0 };
	const char *cfg_path = NULL, *cg = NULL, *sock = NULL, *audit = NULL, *interval = NULL;
	char err[1024];
	int o, ret;

	optind = 1;
	opterr = 0;
	while ((o = getopt_long(argc, argv, "+h", opts, NULL)) != -1) {
		switch (o) {
		case 'c': cfg_path = optarg; break;
		case 'g': cg = optarg; break;
		case 'n': so.dry_run = 1; break;
		case 'S': sock = optarg; break;
		case 'L': audit = optarg; break;
		case 's': so.state_path = optarg; break;
		case 'i': interval = optarg; break;
		case 'P': ccfg_describe(stdout); return 0;
		case 'h': usage(stdout); return 0;
		default:
			fprintf(stderr, "edgectl: supervise: unknown or incomplete option '%s' (see edgectl supervise --help)\n",
				argv[optind - 1]);
			return 2;
		}
	}
	if (optind >= argc) {
		fprintf(stderr, "edgectl: supervise: no core command (edgectl supervise [OPTIONS] -- dify-edge serve ...)\n");
		return 2;
	}
	ccfg_defaults(&so.cfg);
	if (cfg_path && ccfg_load(&so.cfg, cfg_path, err, sizeof(err)) < 0) {
		fprintf(stderr, "edgectl: %s\n", err);
		return 2;
	}
	if ((cg && set_str(so.cfg.cgroup, cg, "--cgroup") < 0) || (sock && set_str(so.cfg.socket, sock, "--socket") < 0) ||
	    (audit && set_str(so.cfg.audit_log, audit, "--audit-log") < 0))
		return 2;
	if (interval) {
		double v;

		if (ccfg_parse_duration(interval, &v) < 0 || v < 0.05 || v > 3600) {
			fprintf(stderr, "edgectl: supervise: --interval '%s': want a duration from 50ms to 1h\n", interval);
			return 2;
		}
		so.cfg.interval_s = v;
	}
	if (!so.state_path)
		so.state_path = so.cfg.state[0] ? so.cfg.state : cstate_default_path();
	so.core_argv = argv + optind;
	so.core_argc = argc - optind;
	ret = sup_run(&so, err, sizeof(err));
	if (ret == -EINVAL) {
		fprintf(stderr, "edgectl: %s\n", err);
		return 2;
	}
	if (ret < 0) {
		fprintf(stderr, "edgectl: supervise: %s\n", err);
		return 1;
	}
	return 0;
}
