/*
 * main.c: the dify-edge binary: a table of subcommands.
 */
#include <stdio.h>
#include <string.h>

#include "dify-edge-core/app/cmds.h"

struct command {
	const char *name;
	int (*fn)(int argc, char **argv);
	const char *summary;
};

static const struct command commands[] = {
	{ .name = "run", .fn = cmd_run, .summary = "generate text from a prompt" },
	{ .name = "tokenize", .fn = cmd_tokenize, .summary = "print the token ids of stdin" },
	{ .name = "bench", .fn = cmd_bench, .summary = "prompt and generation tokens/s" },
	{ .name = "gguf", .fn = cmd_gguf, .summary = "inspect or write GGUF files" },
	{ .name = "serve", .fn = cmd_serve, .summary = "serve the OpenAI-compatible HTTP API" },
};

static void usage(FILE *f)
{
	fprintf(f, "usage: dify-edge COMMAND [OPTIONS]\n\ncommands:\n");
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		fprintf(f, "  %-10s %s\n", commands[i].name, commands[i].summary);
	fprintf(f, "\n'dify-edge COMMAND --help' describes a command.\n");
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
	fprintf(stderr, "dify-edge: unknown command '%s' (see dify-edge --help)\n", argv[1]);
	return 2;
}
