/*
 * fsread.h: reading the small text files of procfs, sysfs, cgroupfs and
 * debugfs. Every reader returns a negative errno (-EINVAL for a file that
 * reads but does not parse) and never prints; callers turn that into the
 * status of the snapshot group they fill.
 */
#ifndef COLLECTORS_FSREAD_H
#define COLLECTORS_FSREAD_H

#include <stddef.h>
#include <stdint.h>

/* whole small file into buf (NUL-terminated); bytes read or -errno */
int fsr_read(const char *path, char *buf, size_t len);
/* first token of the file as an unsigned / signed integer */
int fsr_read_u64(const char *path, uint64_t *v);
int fsr_read_i64(const char *path, int64_t *v);
/* first line without the newline */
int fsr_read_line(const char *path, char *buf, size_t len);
/* "key value" lines (cpu.stat, memory.events, memory.oom_control):
 * the value of key, 0 or -ENOENT (no such key) or -EINVAL */
int fsr_kv_u64(const char *text, const char *key, uint64_t *v);
/* a CPU list "0-3,6" into a bitmask of up to 64 CPUs; -EINVAL if malformed */
int fsr_cpulist(const char *text, uint64_t *mask);
/* parse an unsigned decimal that must be the whole token (trailing
 * whitespace allowed): 0 or -EINVAL */
int fsr_parse_u64(const char *s, uint64_t *v);

/* snprintf for paths and messages where truncation is acceptable (the
 * result is always NUL-terminated); returns buf */
char *fsr_fmt(char *buf, size_t len, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

#endif
