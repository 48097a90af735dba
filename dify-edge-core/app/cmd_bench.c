/* cmd_bench.c: 'dify-edge bench' -- under construction in this session. */
#include <stdio.h>

#include "dify-edge-core/app/cmds.h"

int cmd_bench(int argc, char **argv)
{
	(void)argc;
	(void)argv;
	fprintf(stderr, "dify-edge: bench: not built yet\n");
	return 1;
}
