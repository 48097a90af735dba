/* cmd_serve.c: 'dify-edge serve' -- under construction in this session. */
#include <stdio.h>

#include "dify-edge-core/app/cmds.h"

int cmd_serve(int argc, char **argv)
{
	(void)argc;
	(void)argv;
	fprintf(stderr, "dify-edge: serve: not built yet\n");
	return 1;
}
