/* cmd_gguf.c: 'dify-edge gguf' -- under construction in this session. */
#include <stdio.h>

#include "dify-edge-core/app/cmds.h"

int cmd_gguf(int argc, char **argv)
{
	(void)argc;
	(void)argv;
	fprintf(stderr, "dify-edge: gguf: not built yet\n");
	return 1;
}
