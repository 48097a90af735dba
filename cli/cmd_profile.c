/* cmd_profile.c: 'edgectl profile' -- under construction in this session. */
#include <stdio.h>

#include "cli/cmds.h"

int cmd_profile(int argc, char **argv)
{
	(void)argc;
	(void)argv;
	fprintf(stderr, "edgectl: profile: not built yet\n");
	return 1;
}
