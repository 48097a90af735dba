/* cmd_write_random.c: 'dify-edge gguf write-random' -- under construction in this session. */
#include <stdio.h>

#include "dify-edge-core/app/cmds.h"

int cmd_gguf_write_random(int argc, char **argv)
{
	(void)argc;
	(void)argv;
	fprintf(stderr, "dify-edge: gguf write-random: not built yet\n");
	return 1;
}
