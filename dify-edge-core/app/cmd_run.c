/* cmd_run.c: 'dify-edge run' -- under construction in this session. */
#include <stdio.h>

#include "dify-edge-core/app/cmds.h"

int cmd_run(int argc, char **argv)
{
	(void)argc;
	(void)argv;
	fprintf(stderr, "dify-edge: run: not built yet\n");
	return 1;
}
