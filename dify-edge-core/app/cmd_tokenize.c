/* cmd_tokenize.c: 'dify-edge tokenize' -- under construction in this session. */
#include <stdio.h>

#include "dify-edge-core/app/cmds.h"

int cmd_tokenize(int argc, char **argv)
{
	(void)argc;
	(void)argv;
	fprintf(stderr, "dify-edge: tokenize: not built yet\n");
	return 1;
}
