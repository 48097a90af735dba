/*
 * cmds.h: the subcommands of edgectl. Each takes the arguments after its
 * name (argv[0] is the subcommand) and returns the exit status: 0 success,
 * 1 failure, 2 bad usage or bad input. Errors go to stderr as one line:
 * "edgectl: <thing>: <problem>".
 */
#ifndef CLI_CMDS_H
#define CLI_CMDS_H

int cmd_profile(int argc, char **argv);
int cmd_tune(int argc, char **argv);
int cmd_supervise(int argc, char **argv);
int cmd_revert(int argc, char **argv);

#endif
