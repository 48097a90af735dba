/*
 * affinity.h: CPU lists and per-thread CPU affinity.
 *
 * CPU lists use the kernel's list format ("0-3,6"), parsed strictly: a bad
 * list, an empty one, or one naming a CPU that is not online is refused with
 * a message naming the list and the CPU. Thread ids come from
 * <root>/proc/PID/task; affinity itself is sched_getaffinity /
 * sched_setaffinity on each thread (the live kernel, never a fixture).
 */
#ifndef CONTROLLER_AFFINITY_H
#define CONTROLLER_AFFINITY_H

#include <sched.h>
#include <stddef.h>
#include <sys/types.h>

#define AFF_MAX_CPUS 1024

/* Parse "0-3,6" into set. Empty string is -EINVAL "empty CPU list". */
int aff_parse_list(const char *list, cpu_set_t *set, char *err, size_t errlen);
/* Format set as the kernel's list format ("" when empty). */
void aff_format_list(const cpu_set_t *set, char *buf, size_t len);
/* The online CPUs under root (<root>/sys/devices/system/cpu/online). */
int aff_online(const char *root, cpu_set_t *set, char *err, size_t errlen);
/* Parse list and refuse empty lists and CPUs that are not online under root. */
int aff_check_list(const char *root, const char *list, cpu_set_t *set, char *err, size_t errlen);

/* Thread ids of pid, from <root>/proc/PID/task. Caller frees *tids. */
int aff_tids(const char *root, pid_t pid, pid_t **tids, size_t *n, char *err, size_t errlen);

int aff_get(pid_t tid, cpu_set_t *set, char *err, size_t errlen);
int aff_set(pid_t tid, const cpu_set_t *set, char *err, size_t errlen);
/*
 * Set every thread of pid to set, re-listing the threads until a pass finds
 * no new one (threads created meanwhile inherit their creator's old mask).
 * Threads that exit meanwhile are skipped. Returns the number of threads set.
 */
int aff_set_process(const char *root, pid_t pid, const cpu_set_t *set, char *err, size_t errlen);

#endif
