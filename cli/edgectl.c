/*
 * edgectl.c: the operator's command line: a table of subcommands.
 */
#include <stdio.h>
#include <string.h>

#include "cli/cmds.h"

struct command {
	const char *name;
	int (*fn)(int argc, char **argv);
	const char *summary;
};

static const struct command commands[] = {
	{ .name = "profile", .fn = cmd_profile, .summary = "per-second resource profile of a pid, a cgroup or the machine" },
	{ .name = "tune", .fn = cmd_tune, .summary = "plan (and apply) CPUs, quota and weight for a target" },
	{ .name = "supervise", .fn = cmd_supervise, .summary = "run dify-edge serve under live tuning" },
	{ .name = "revert", .fn = cmd_revert, .summary = "restore what tune or supervise changed" },
};

static void usage(FILE *f)
{
	fprintf(f, "usage: edgectl COMMAND [OPTIONS]\n\ncommands:\n");
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		fprintf(f, "  %-10s %s\n", commands[i].name, commands[i].summary);
	fprintf(f, "\n'edgectl COMMAND --help' describes a command.\n");
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		usage(stderr);
		return 2;
	}
	if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
		usage(stdout);
		return 0;
	}
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		if (!strcmp(argv[1], commands[i].name))
			return commands[i].fn(argc - 1, argv + 1);
	fprintf(stderr, "edgectl: unknown command '%s' (see edgectl --help)\n", argv[1]);
	return 2;
}
