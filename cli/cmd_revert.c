/* cmd_revert.c: 'edgectl revert' -- under construction in this session. */
#include <stdio.h>

#include "cli/cmds.h"

int cmd_revert(int argc, char **argv)
{
	(void)argc;
	(void)argv;
	fprintf(stderr, "edgectl: revert: not built yet\n");
	return 1;
}
