/* cmd_supervise.c: 'edgectl supervise' -- under construction in this session. */
#include <stdio.h>

#include "cli/cmds.h"

int cmd_supervise(int argc, char **argv)
{
	(void)argc;
	(void)argv;
	fprintf(stderr, "edgectl: supervise: not built yet\n");
	return 1;
}
