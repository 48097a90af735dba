/* cmd_tune.c: 'edgectl tune' -- under construction in this session. */
#include <stdio.h>

#include "cli/cmds.h"

int cmd_tune(int argc, char **argv)
{
	(void)argc;
	(void)argv;
	fprintf(stderr, "edgectl: tune: not built yet\n");
	return 1;
}
