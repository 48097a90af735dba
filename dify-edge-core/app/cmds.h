/*
 * cmds.h: the subcommands of the dify-edge binary. Each takes the arguments
 * after its name (argv[0] is the subcommand) and returns the exit status:
 * 0 success, 1 failure, 2 bad usage or bad input (conventions: only main
 * decides; a command prints its own one-line error "dify-edge: ...").
 */
#ifndef APP_CMDS_H
#define APP_CMDS_H

int cmd_run(int argc, char **argv);
int cmd_tokenize(int argc, char **argv);
int cmd_bench(int argc, char **argv);
int cmd_gguf(int argc, char **argv);
/* 'dify-edge gguf write-random ...' (argv[0] is "write-random") */
int cmd_gguf_write_random(int argc, char **argv);
int cmd_serve(int argc, char **argv);

#endif
