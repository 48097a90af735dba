/*
 * cmd_revert.c: 'edgectl revert [--state FILE]': put back everything that
 * tune or supervise recorded in the state file before changing it (cgroup
 * files byte for byte, process membership, thread affinities, the core's
 * thread-pool size) and remove the cgroups they created. Works after a
 * kill -9 of the edgectl that applied the changes: the state is written
 * before the first change. See controller/state.h for the order.
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cmds.h"
#include "controller/cgroup.h"
#include "controller/state.h"

static void usage(FILE *f)
{
	fprintf(f,
		"usage: edgectl revert [--state FILE] [--quiet]\n"
		"\n"
		"Restore what 'edgectl tune --apply' or 'edgectl supervise' changed, from the\n"
		"state file (default $EDGECTL_STATE or %s).\n"
		"Exit status: 0 restored (or nothing to revert), 1 something could not be\n"
		"restored (the state file is kept; run revert again), 2 bad usage or state file.\n"
		"\n"
		"example:\n"
		"  edgectl tune --pid 1234 --apply; edgectl revert\n",
		CSTATE_DEFAULT_PATH);
}

static void print_line(void *ud, const char *line)
{
	if (!*(int *)ud)
		printf("  %s\n", line);
}

int cmd_revert(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "state", required_argument, NULL, 's' },
		{ "quiet", no_argument, NULL, 'q' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	const char *path = NULL;
	struct cstate *st = NULL;
	struct cg_sys *s = NULL;
	char err[1024];
	int quiet = 0, o, ret, rc = 1;

	optind = 1;
	opterr = 0;
	while ((o = getopt_long(argc, argv, "+hq", opts, NULL)) != -1) {
		switch (o) {
		case 's': path = optarg; break;
		case 'q': quiet = 1; break;
		case 'h': usage(stdout); return 0;
		default:
			fprintf(stderr, "edgectl: revert: unknown or incomplete option '%s' (see edgectl revert --help)\n",
				argv[optind - 1]);
			return 2;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "edgectl: revert: unexpected argument '%s'\n", argv[optind]);
		return 2;
	}
	if (!path)
		path = cstate_default_path();
	ret = cstate_load(path, &st, err, sizeof(err));
	if (ret == -ENOENT) {
		if (!quiet)
			printf("edgectl: state %s: nothing to revert\n", path);
		return 0;
	}
	if (ret < 0) {
		fprintf(stderr, "edgectl: %s\n", err);
		return 2;
	}
	s = cg_sys_open(getenv("EDGE_SYSROOT"), err, sizeof(err));
	if (!s) {
		fprintf(stderr, "edgectl: revert: %s\n", err);
		goto out;
	}
	if (!quiet)
		printf("reverting from %s:\n", path);
	ret = cstate_revert(st, s, print_line, &quiet, err, sizeof(err));
	if (ret < 0) {
		fprintf(stderr, "edgectl: revert: %s (state kept in %s)\n", err, path);
		goto out;
	}
	if (!quiet)
		printf("reverted; %s removed\n", path);
	rc = 0;
out:
	cg_sys_free(s);
	cstate_free(st);
	return rc;
}
