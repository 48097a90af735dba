/*
 * bench_collectors.c: overhead of the scheduler tracing (make bench, section
 * "collectors").
 *
 *   bench-collectors pingpong SECONDS
 *       a context-switch storm: two processes pinned to CPU 0 pass one byte
 *       back and forth through two pipes; prints round trips per second (each
 *       round trip is two context switches and two wakeups) and the CPU time
 *       both processes used per round trip (getrusage: independent of other
 *       load on the machine, and BPF programs are charged to the task they
 *       run in).
 *   bench-collectors bpfcost SECONDS [system|pid] [wakeup] [lru]
 *       loads bpf/schedtrace (filter none: every task is a target, the worst
 *       case; or pid: a pid set holding only an idle process, the common
 *       case where almost every task is untraced), switches on the kernel's
 *       BPF statistics (kernel.bpf_stats_enabled), runs the ping-pong, and
 *       prints the sched_switch program's run_time_ns / run_cnt, and the
 *       run time of all its programs (wakeups too) per switch event.
 *       "wakeup": run-queue latency from the wakeup programs even where
 *       the kernel's sched_info would serve; "lru": thread records in the
 *       per-CPU LRU hash even under tp_btf (what task storage replaced);
 *       "noslots": in task storage alone (what the slot table replaced).
 *   bench-collectors storm SECONDS [system|pid] [wakeup] [lru] [noslots]
 *       the same programs loaded as bpfcost loads them (no statistics, no
 *       user-space profile), and the ping-pong's figures as pingpong prints
 *       them: the storm's cost of the kernel side alone, one variant against
 *       another. "noslots": thread records in task storage alone (what the
 *       slot table replaced).
 *   bench-collectors cycle SECONDS [ROUNDS]
 *       the ping-pong with no program, the floor (below), the kernel side
 *       filtered to a sleeping pid (the storm untraced), and system-wide
 *       with thread records in slots and in task storage alone, in short rounds taken in turn (ROUNDS, default 10, the order
 *       rotated each round); prints each case's median CPU per round trip
 *       and the median of its loss against its own round's no-program run.
 *   bench-collectors floor SECONDS
 *       the ping-pong with the smallest program there is (r0 = 0; exit)
 *       attached to sched_switch as a raw tracepoint, nothing else: what
 *       any BPF program on that tracepoint costs the storm (the kernel's
 *       dispatch), the floor under every profile's figure.
 *   bench-collectors evcost SECONDS
 *       loads bpf/evtrace and reports the cost of the programs that catch
 *       sched_setaffinity during the ping-pong: they run on every syscall
 *       only where neither fexit nor the syscall's own tracepoints work
 *       (mode "... raw syscalls").
 * Output is one "key value" line per figure, for tests/bench/run.sh.
 */
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <bpf/bpf.h>
#include <linux/bpf.h>

#include "bpf/evtrace.h"
#include "bpf/schedtrace.h"

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void pin0(void)
{
	cpu_set_t set;

	CPU_ZERO(&set);
	CPU_SET(0, &set);
	sched_setaffinity(0, sizeof(set), &set);
}

static double cpu_s(int who)
{
	struct rusage ru;

	getrusage(who, &ru);
	return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
	       (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
}

/* CPU time (both processes, user + system) per round trip of the last run:
 * unlike round trips per second it does not depend on what else the
 * machine runs, and BPF programs are charged to the task they run in */
static double last_cpu_ns_per_rt;

/* returns round trips per second, or a negative value on failure */
static double pingpong(double seconds)
{
	int a[2], b[2];
	char c = 'x';
	long n = 0;
	pid_t child;
	double t0, t1;

	double c0 = cpu_s(RUSAGE_SELF) + cpu_s(RUSAGE_CHILDREN);

	if (pipe(a) || pipe(b))
		return -1;
	child = fork();
	if (child < 0)
		return -1;
	if (child == 0) {
		pin0();
		close(a[1]);
		close(b[0]);
		while (read(a[0], &c, 1) == 1)
			if (write(b[1], &c, 1) != 1)
				break;
		_exit(0);
	}
	pin0();
	close(a[0]);
	close(b[1]);
	t0 = now_s();
	do {
		for (int i = 0; i < 1000; i++) {
			if (write(a[1], &c, 1) != 1 || read(b[0], &c, 1) != 1)
				goto out;
			n++;
		}
		t1 = now_s();
	} while (t1 - t0 < seconds);
out:
	t1 = now_s();
	close(a[1]);
	close(b[0]);
	waitpid(child, NULL, 0);
	last_cpu_ns_per_rt = n ? (cpu_s(RUSAGE_SELF) + cpu_s(RUSAGE_CHILDREN) - c0) * 1e9 / (double)n : 0;
	return (double)n / (t1 - t0);
}

static int set_bpf_stats(int on)
{
	int fd = open("/proc/sys/kernel/bpf_stats_enabled", O_WRONLY);
	int ret = 0;

	if (fd < 0)
		return -errno;
	if (write(fd, on ? "1" : "0", 1) != 1)
		ret = -errno;
	close(fd);
	return ret;
}

/* the floor: the smallest program there is (r0 = 0; exit) on sched_switch
 * as a raw tracepoint; *pfd and *lfd to close; 0 or -1 (errno) */
static int floor_attach(int *pfd, int *lfd)
{
	const struct bpf_insn insns[] = {
		{ .code = BPF_ALU64 | BPF_MOV | BPF_K, .dst_reg = BPF_REG_0, .imm = 0 },
		{ .code = BPF_JMP | BPF_EXIT },
	};

	*lfd = -1;
	*pfd = bpf_prog_load(BPF_PROG_TYPE_RAW_TRACEPOINT, "floor", "GPL", insns, 2, NULL);
	if (*pfd < 0)
		return -1;
	*lfd = bpf_raw_tracepoint_open("sched_switch", *pfd);
	if (*lfd < 0) {
		int e = errno;
		close(*pfd);
		errno = e;
		return -1;
	}
	return 0;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

static double median(double *v, int n)
{
	qsort(v, (size_t)n, sizeof(*v), cmp_double);
	return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

/* bench-collectors cycle SECONDS ROUNDS: the ping-pong with nothing, the
 * floor, bpf/schedtrace filtered to init's pid (the storm untraced) and
 * system-wide with thread records in slots and in task storage alone, in turn, ROUNDS times (the order rotated each round,
 * so that no case always follows another); each case's loss is taken
 * against the no-program run of its own round, then the median over rounds:
 * short paired rounds, so that the machine's drift (this guest's round trip
 * moves by +-3 % over a minute) cancels */
enum { CY_BASE, CY_FLOOR, CY_PID, CY_SLOTS, CY_TS, CY_N };
static const char *const cy_name[CY_N] = {
	[CY_BASE] = "none", [CY_FLOOR] = "floor", [CY_PID] = "pid", [CY_SLOTS] = "slots", [CY_TS] = "task_storage",
};

static int cycle(double secs, int rounds)
{
	double *ns = calloc((size_t)(rounds * CY_N), sizeof(*ns));
	double *tmp = calloc((size_t)rounds, sizeof(*tmp));
	char err[512];
	int ret = 1;

	if (!ns || !tmp)
		goto out;
	for (int r = 0; r < rounds; r++) {
		for (int k = 0; k < CY_N; k++) {
			int c = (k + r) % CY_N, pfd = -1, lfd = -1;
			struct schedtrace *st = NULL;
			if (c == CY_FLOOR && floor_attach(&pfd, &lfd)) {
				fprintf(stderr, "bench-collectors: floor: %s\n", strerror(errno));
				goto out;
			}
			if (c == CY_PID || c == CY_SLOTS || c == CY_TS) {
				int32_t one = 1; /* init: sleeps, so nearly every switch is untraced */
				struct schedtrace_opts o = { .filter = c == CY_PID ? ST_FILTER_PIDS : ST_FILTER_NONE,
							     .pids = &one, .npids = c == CY_PID,
							     .no_thread_slots = c == CY_TS };
				st = schedtrace_open(&o, err, sizeof(err));
				if (!st) {
					fprintf(stderr, "bench-collectors: %s\n", err);
					goto out;
				}
			}
			double rt = pingpong(secs);
			schedtrace_free(st);
			if (lfd >= 0)
				close(lfd);
			if (pfd >= 0)
				close(pfd);
			if (rt < 0) {
				fprintf(stderr, "bench-collectors: pingpong: %s\n", strerror(errno));
				goto out;
			}
			ns[r * CY_N + c] = last_cpu_ns_per_rt;
		}
	}
	for (int c = 0; c < CY_N; c++) {
		for (int r = 0; r < rounds; r++)
			tmp[r] = ns[r * CY_N + c];
		printf("%s_cpu_ns_per_roundtrip %.0f\n", cy_name[c], median(tmp, rounds));
		if (c == CY_BASE)
			continue;
		for (int r = 0; r < rounds; r++)
			tmp[r] = 100.0 * (ns[r * CY_N + c] - ns[r * CY_N]) / ns[r * CY_N + c];
		printf("%s_loss_pct %.1f\n", cy_name[c], median(tmp, rounds));
	}
	printf("rounds %d\n", rounds);
	ret = 0;
out:
	free(ns);
	free(tmp);
	return ret;
}

int main(int argc, char **argv)
{
	double secs = argc > 2 ? atof(argv[2]) : 3.0;

	if (argc < 2 || secs <= 0) {
		fprintf(stderr, "usage: bench-collectors pingpong|bpfcost|storm|cycle|floor|evcost SECONDS [system|pid] [wakeup] [lru] [noslots]\n");
		return 2;
	}
	if (!strcmp(argv[1], "pingpong")) {
		double r = pingpong(secs);
		if (r < 0) {
			fprintf(stderr, "bench-collectors: pingpong: %s\n", strerror(errno));
			return 1;
		}
		printf("roundtrips_per_s %.0f\n", r);
		printf("cpu_ns_per_roundtrip %.0f\n", last_cpu_ns_per_rt);
		return 0;
	}
	if (!strcmp(argv[1], "bpfcost") || !strcmp(argv[1], "storm")) {
		bool pidmode = argc > 3 && !strcmp(argv[3], "pid");
		bool storm = !strcmp(argv[1], "storm");
		struct schedtrace_opts o = { .filter = pidmode ? ST_FILTER_PIDS : ST_FILTER_NONE };
		for (int i = 4; i < argc; i++) {
			if (!strcmp(argv[i], "wakeup"))
				o.no_run_delay = true;
			else if (!strcmp(argv[i], "lru"))
				o.force_lru_threads = true;
			else if (!strcmp(argv[i], "noslots"))
				o.no_thread_slots = true;
		}
		__u64 at0 = 0, ac0 = 0, at1 = 0, ac1 = 0;
		char err[512];
		__u64 rt0 = 0, rc0 = 0, rt1 = 0, rc1 = 0;
		int ret = 1;

		struct schedtrace *st = schedtrace_open(&o, err, sizeof(err));
		if (!st) {
			fprintf(stderr, "bench-collectors: %s\n", err);
			return 1;
		}
		if (pidmode) {
			int32_t one = 1; /* init: sleeps, so nearly every switch is untraced */
			schedtrace_set_pids(st, &one, 1);
		}
		if (storm) {
			double r = pingpong(secs);
			printf("thread_store %s\n", schedtrace_thread_store(st));
			printf("roundtrips_per_s %.0f\n", r);
			printf("cpu_ns_per_roundtrip %.0f\n", last_cpu_ns_per_rt);
			schedtrace_free(st);
			return r < 0;
		}
		if (set_bpf_stats(1)) {
			fprintf(stderr, "bench-collectors: kernel.bpf_stats_enabled: %s\n", strerror(errno));
			goto out;
		}
		schedtrace_switch_stats(st, &rt0, &rc0);
		schedtrace_all_stats(st, &at0, &ac0);
		double r = pingpong(secs);
		schedtrace_switch_stats(st, &rt1, &rc1);
		schedtrace_all_stats(st, &at1, &ac1);
		set_bpf_stats(0);
		if (rc1 <= rc0) {
			fprintf(stderr, "bench-collectors: no sched_switch events counted\n");
			goto out;
		}
		printf("mode %s\n", schedtrace_mode(st));
		printf("filter %s\n", pidmode ? "pid" : "system");
		printf("roundtrips_per_s %.0f\n", r);
		printf("switch_events %llu\n", (unsigned long long)(rc1 - rc0));
		printf("ns_per_switch %.1f\n", (double)(rt1 - rt0) / (double)(rc1 - rc0));
		printf("rq_source %s\n", schedtrace_run_delay(st) ? "sched_info" : "wakeup");
		printf("thread_store %s\n", schedtrace_thread_store(st));
		printf("all_prog_runs %llu\n", (unsigned long long)(ac1 - ac0));
		printf("all_ns_per_switch %.1f\n", (double)(at1 - at0) / (double)(rc1 - rc0));
		ret = 0;
out:
		schedtrace_free(st);
		return ret;
	}
	if (!strcmp(argv[1], "cycle"))
		return cycle(secs, argc > 3 ? atoi(argv[3]) > 0 ? atoi(argv[3]) : 1 : 10);
	if (!strcmp(argv[1], "floor")) {
		int pfd, lfd;
		if (floor_attach(&pfd, &lfd)) {
			fprintf(stderr, "bench-collectors: floor: an empty raw_tp program on sched_switch: %s\n",
				strerror(errno));
			return 1;
		}
		double r = pingpong(secs);
		printf("roundtrips_per_s %.0f\n", r);
		printf("cpu_ns_per_roundtrip %.0f\n", last_cpu_ns_per_rt);
		close(lfd);
		close(pfd);
		return 0;
	}
	if (!strcmp(argv[1], "evcost")) {
		struct evtrace_opts o = { .filter = ST_FILTER_NONE, .pids_fd = -1 };
		char err[512];
		__u64 rt0 = 0, rc0 = 0, rt1 = 0, rc1 = 0;
		struct evtrace *ev = evtrace_open(&o, err, sizeof(err));

		if (!ev) {
			fprintf(stderr, "bench-collectors: %s\n", err);
			return 1;
		}
		if (set_bpf_stats(1)) {
			fprintf(stderr, "bench-collectors: kernel.bpf_stats_enabled: %s\n", strerror(errno));
			evtrace_free(ev);
			return 1;
		}
		evtrace_syscall_stats(ev, &rt0, &rc0);
		double r = pingpong(secs);
		evtrace_syscall_stats(ev, &rt1, &rc1);
		set_bpf_stats(0);
		printf("mode %s\n", evtrace_mode(ev));
		printf("roundtrips_per_s %.0f\n", r);
		printf("syscall_prog_runs %llu\n", (unsigned long long)(rc1 - rc0));
		printf("ns_per_syscall_prog %.1f\n", rc1 > rc0 ? (double)(rt1 - rt0) / (double)(rc1 - rc0) : 0.0);
		evtrace_free(ev);
		return 0;
	}
	fprintf(stderr, "bench-collectors: unknown mode '%s'\n", argv[1]);
	return 2;
}
