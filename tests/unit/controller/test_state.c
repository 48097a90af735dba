/*
 * test_state.c: the revert state file on the cgroup v2 fixture tree (a copy
 * under /tmp): values restored byte for byte, created cgroups removed, the
 * first recorded value wins, a state reloaded from disk (as after kill -9)
 * reverts the same, a thread's affinity comes back exactly, and on v2 the
 * controllers enabled in ancestors' cgroup.subtree_control are turned off
 * again byte for byte.
 */
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cmocka.h>

#include "controller/affinity.h"
#include "controller/cgroup.h"
#include "controller/state.h"

static char fx[512], statep[600];

static int setup(void **state)
{
	char cmd[2400];
	const char *src = getenv("EDGE_FIXTURES") ? getenv("EDGE_FIXTURES") : "tests/fixtures";

	(void)state;
	snprintf(fx, sizeof(fx), "/tmp/ctl-state-test.%d", (int)getpid());
	if (snprintf(cmd, sizeof(cmd), "rm -rf %s && mkdir -p %s && cp -a %s/cgroup-v2 %s/root", fx, fx, src, fx) >=
		    (int)sizeof(cmd) ||
	    system(cmd) != 0)
		return -1;
	snprintf(statep, sizeof(statep), "%s/run/state.json", fx);
	strcat(fx, "/root");
	return 0;
}

static int teardown(void **state)
{
	char cmd[1200];

	(void)state;
	snprintf(cmd, sizeof(cmd), "rm -rf /tmp/ctl-state-test.%d", (int)getpid());
	return system(cmd) == 0 ? 0 : -1;
}

static void slurp(const char *path, char *buf, size_t len)
{
	FILE *f = fopen(path, "r");
	size_t n;

	assert_non_null(f);
	n = fread(buf, 1, len - 1, f);
	buf[n] = 0;
	fclose(f);
}

static void test_revert_bytes_and_created(void **state)
{
	static const char *const files[] = { "cpu.max", "cpu.weight", "cpuset.cpus", "memory.high" };
	char err[512], before[4][256], after[256], p[1200];
	struct cg_sys *s = cg_sys_open(fx, err, sizeof(err));
	struct cstate *st = NULL, *st2 = NULL;
	char **created = NULL;
	size_t n = 0;

	(void)state;
	assert_non_null(s);
	for (int i = 0; i < 4; i++) {
		snprintf(p, sizeof(p), "%s/sys/fs/cgroup/edge.slice/core/%s", fx, files[i]);
		slurp(p, before[i], sizeof(before[i]));
	}
	assert_int_equal(cstate_open(statep, "test", &st, err, sizeof(err)), 0);
	assert_true(cstate_empty(st));
	assert_int_equal(cstate_note_knob(st, s, CG_KNOB_CPU_MAX, "edge.slice/core", err, sizeof(err)), 0);
	assert_int_equal(cstate_note_knob(st, s, CG_KNOB_WEIGHT, "edge.slice/core", err, sizeof(err)), 0);
	assert_int_equal(cstate_note_knob(st, s, CG_KNOB_CPUS, "edge.slice/core", err, sizeof(err)), 0);
	assert_int_equal(cstate_note_knob(st, s, CG_KNOB_MEM_HIGH, "edge.slice/core", err, sizeof(err)), 0);
	assert_int_equal(cstate_note_created(st, CG_CPU, "edge.slice/tmp"), 0);
	assert_int_equal(cstate_save(st, err, sizeof(err)), 0);

	/* change everything, twice: the first recorded value must win */
	assert_int_equal(cg_set_cpu_max(s, "edge.slice/core", 35000, 100000, err, sizeof(err)), 0);
	assert_int_equal(cg_set_weight(s, "edge.slice/core", 7, err, sizeof(err)), 0);
	assert_int_equal(cstate_note_knob(st, s, CG_KNOB_CPU_MAX, "edge.slice/core", err, sizeof(err)), 0);
	assert_int_equal(cg_set_cpu_max(s, "edge.slice/core", 20000, 50000, err, sizeof(err)), 0);
	assert_int_equal(cg_set_cpus(s, "edge.slice/core", "4-7", err, sizeof(err)), 0);
	assert_int_equal(cg_set_mem(s, "edge.slice/core", CG_KNOB_MEM_HIGH, 1 << 20, err, sizeof(err)), 0);
	assert_int_equal(cg_create(s, "edge.slice/tmp", 1u << CG_CPU, &created, &n, err, sizeof(err)), 0);
	assert_int_equal(cstate_save(st, err, sizeof(err)), 0);
	cstate_free(st); /* as if edgectl died here */

	/* a fresh process loads the state from disk and reverts */
	assert_int_equal(cstate_load(statep, &st2, err, sizeof(err)), 0);
	assert_int_equal(cstate_revert(st2, s, NULL, NULL, err, sizeof(err)), 0);
	for (int i = 0; i < 4; i++) {
		snprintf(p, sizeof(p), "%s/sys/fs/cgroup/edge.slice/core/%s", fx, files[i]);
		slurp(p, after, sizeof(after));
		assert_string_equal(after, before[i]);
	}
	assert_false(cg_exists(s, CG_CPU, "edge.slice/tmp"));
	assert_int_equal(access(statep, F_OK), -1); /* removed after a full revert */
	assert_int_equal(cstate_load(statep, &st, err, sizeof(err)), -ENOENT);
	for (size_t i = 0; i < n; i++)
		free(created[i]);
	free(created);
	cstate_free(st2);
	cg_sys_free(s);
}

static void spit(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");

	assert_non_null(f);
	assert_int_equal(fputs(text, f) >= 0, 1);
	assert_int_equal(fclose(f), 0);
}

static void free_list(char **l, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(l[i]);
	free(l);
}

/*
 * cgroup v2: the root's subtree_control lacks "cpu" (as on a freshly booted
 * pure-v2 machine), edge.slice's lacks cpu and memory. Creating cgroups below
 * them must first enable what is missing (else the child has no cpu.max:
 * "writing '100000 100000': No such file or directory" on the kernel), the
 * enabled pairs are recorded first, and revert turns exactly those off again:
 * the files come back byte for byte.
 */
static void test_v2_subtree_control(void **state)
{
	char err[512], p_root[1200], p_slice[1200], p[1200], buf[256];
	char before_root[256], before_slice[256];
	struct cg_sys *s = cg_sys_open(fx, err, sizeof(err));
	struct cstate *st = NULL, *st2 = NULL;
	char **list = NULL;
	size_t n = 0;
	int64_t q, per;

	(void)state;
	assert_non_null(s);
	snprintf(p_root, sizeof(p_root), "%s/sys/fs/cgroup/cgroup.subtree_control", fx);
	snprintf(p_slice, sizeof(p_slice), "%s/sys/fs/cgroup/edge.slice/cgroup.subtree_control", fx);
	slurp(p_root, before_root, sizeof(before_root));
	slurp(p_slice, before_slice, sizeof(before_slice));
	spit(p_root, "cpuset io memory pids\n");
	spit(p_slice, "cpuset\n");

	/* what would be enabled, in ancestors that exist, outermost first */
	assert_int_equal(cg_subtree_missing(s, "edgectl/tune-42", 1u << CG_CPU, &list, &n, err, sizeof(err)), 0);
	assert_int_equal(n, 1);
	assert_string_equal(list[0], "cpu:");
	free_list(list, n);
	assert_int_equal(cg_subtree_missing(s, "edge.slice/new/x", (1u << CG_CPU) | (1u << CG_CPUACCT) |
					    (1u << CG_CPUSET) | (1u << CG_MEMORY), &list, &n, err, sizeof(err)), 0);
	assert_int_equal(n, 3);
	assert_string_equal(list[0], "cpu:");
	assert_string_equal(list[1], "cpu:edge.slice");
	assert_string_equal(list[2], "memory:edge.slice");
	free_list(list, n);
	/* nothing missing where everything is enabled */
	assert_int_equal(cg_subtree_missing(s, "edge.slice/core", 1u << CG_CPUSET, &list, &n, err, sizeof(err)), 0);
	assert_int_equal(n, 0);
	free(list);

	/* tune --pid's sequence: state first, then create */
	assert_int_equal(cstate_open(statep, "test", &st, err, sizeof(err)), 0);
	assert_int_equal(cstate_note_created(st, CG_CPU, "edgectl"), 0);
	assert_int_equal(cstate_note_created(st, CG_CPU, "edgectl/tune-42"), 0);
	assert_int_equal(cstate_note_subtree_missing(st, s, "edgectl/tune-42", 1u << CG_CPU, err, sizeof(err)), 0);
	assert_false(cstate_empty(st));
	assert_int_equal(cstate_save(st, err, sizeof(err)), 0);
	slurp(p_root, buf, sizeof(buf));
	assert_string_equal(buf, "cpuset io memory pids\n"); /* noted, not yet changed */
	assert_int_equal(cg_create(s, "edgectl/tune-42", 1u << CG_CPU, &list, &n, err, sizeof(err)), 0);
	free_list(list, n);
	slurp(p_root, buf, sizeof(buf));
	assert_string_equal(buf, "cpuset cpu io memory pids\n");
	snprintf(p, sizeof(p), "%s/sys/fs/cgroup/edgectl/cgroup.subtree_control", fx);
	slurp(p, buf, sizeof(buf));
	assert_string_equal(buf, "cpu\n"); /* an ancestor we made hands cpu down too */
	snprintf(p, sizeof(p), "%s/sys/fs/cgroup/edgectl/tune-42/cgroup.controllers", fx);
	slurp(p, buf, sizeof(buf));
	assert_string_equal(buf, "cpu\n");
	assert_int_equal(cg_get_cpu_max(s, "edgectl/tune-42", &q, &per, err, sizeof(err)), 0);
	assert_int_equal(q, -1);
	assert_int_equal(cg_set_cpu_max(s, "edgectl/tune-42", 100000, 100000, err, sizeof(err)), 0);

	/* supervise's: three controllers, through a pre-existing parent */
	assert_int_equal(cstate_note_created(st, CG_CPU, "edge.slice/new"), 0);
	assert_int_equal(cstate_note_created(st, CG_CPU, "edge.slice/new/x"), 0);
	assert_int_equal(cstate_note_subtree_missing(st, s, "edge.slice/new/x", (1u << CG_CPU) | (1u << CG_CPUSET) |
						     (1u << CG_MEMORY), err, sizeof(err)), 0);
	assert_int_equal(cstate_save(st, err, sizeof(err)), 0);
	assert_int_equal(cg_create(s, "edge.slice/new/x", (1u << CG_CPU) | (1u << CG_CPUSET) | (1u << CG_MEMORY), &list,
				   &n, err, sizeof(err)), 0);
	free_list(list, n);
	slurp(p_slice, buf, sizeof(buf));
	assert_string_equal(buf, "cpuset cpu memory\n");
	assert_int_equal(cg_set_mem(s, "edge.slice/new/x", CG_KNOB_MEM_MAX, 1 << 20, err, sizeof(err)), 0);
	assert_int_equal(cg_set_cpus(s, "edge.slice/new/x", "4-7", err, sizeof(err)), 0);
	cstate_free(st); /* as if edgectl died here */

	assert_int_equal(cstate_load(statep, &st2, err, sizeof(err)), 0);
	assert_int_equal(cstate_revert(st2, s, NULL, NULL, err, sizeof(err)), 0);
	assert_false(cg_exists(s, CG_CPU, "edgectl"));
	assert_false(cg_exists(s, CG_CPU, "edge.slice/new"));
	slurp(p_root, buf, sizeof(buf));
	assert_string_equal(buf, "cpuset io memory pids\n");
	slurp(p_slice, buf, sizeof(buf));
	assert_string_equal(buf, "cpuset\n");
	cstate_free(st2);

	/* put the fixture back for the other tests */
	spit(p_root, before_root);
	spit(p_slice, before_slice);
	cg_sys_free(s);
}

static void test_bad_state_files(void **state)
{
	static const char *const texts[] = { "{not json", "[]", "{\"version\": 7}" };
	char err[512];
	struct cstate *st;

	(void)state;
	for (size_t i = 0; i < 3; i++) {
		FILE *f = fopen(statep, "w");

		assert_non_null(f);
		fputs(texts[i], f);
		fclose(f);
		assert_int_equal(cstate_load(statep, &st, err, sizeof(err)), -EINVAL);
		assert_non_null(strstr(err, statep));
	}
	unlink(statep);
}

static void *idle_thread(void *arg)
{
	pid_t *tid = arg;

	__atomic_store_n(tid, (pid_t)syscall(SYS_gettid), __ATOMIC_RELEASE);
	pause();
	return NULL;
}

/* A thread that only waits; its tid once it runs. */
static pid_t start_idle_thread(pthread_t *th)
{
	pid_t tid = 0;

	assert_int_equal(pthread_create(th, NULL, idle_thread, (void *)&tid), 0);
	while (!__atomic_load_n(&tid, __ATOMIC_ACQUIRE))
		sched_yield();
	return tid;
}

static void test_affinity_restored(void **state)
{
	char err[512], l0[64], l1[64];
	struct cg_sys *s = cg_sys_open(fx, err, sizeof(err));
	struct cstate *st = NULL;
	cpu_set_t orig, one, got;
	pid_t tid;
	pthread_t th;

	(void)state;
	assert_non_null(s);
	tid = start_idle_thread(&th);
	assert_int_equal(aff_get(tid, &orig, err, sizeof(err)), 0);
	assert_int_equal(cstate_open(statep, "test", &st, err, sizeof(err)), 0);
	/* live threads are read from the real /proc, so use an empty root for them */
	assert_int_equal(cstate_note_affinity(st, "", getpid(), err, sizeof(err)), 0);
	assert_int_equal(cstate_save(st, err, sizeof(err)), 0);
	CPU_ZERO(&one);
	CPU_SET(0, &one);
	assert_true(aff_set_process("", getpid(), &one, err, sizeof(err)) >= 2);
	assert_int_equal(aff_get(tid, &got, err, sizeof(err)), 0);
	assert_true(CPU_EQUAL(&got, &one));
	assert_int_equal(cstate_revert(st, s, NULL, NULL, err, sizeof(err)), 0);
	assert_int_equal(aff_get(tid, &got, err, sizeof(err)), 0);
	aff_format_list(&orig, l0, sizeof(l0));
	aff_format_list(&got, l1, sizeof(l1));
	assert_string_equal(l1, l0);
	pthread_cancel(th);
	pthread_join(th, NULL);
	cstate_free(st);
	cg_sys_free(s);
}

/* The workers' class, when the core's admin socket is gone but its threads run:
 * put back thread by thread, from the tids recorded. */
static void test_sched_restored(void **state)
{
	char err[512];
	struct cg_sys *s = cg_sys_open(fx, err, sizeof(err));
	struct cstate *st = NULL, *st2 = NULL;
	struct sched_param sp = { .sched_priority = 1 };
	pid_t tid, tids[2];
	pthread_t th;

	(void)state;
	assert_non_null(s);
	tid = start_idle_thread(&th);
	tids[0] = tid;
	tids[1] = 999999999; /* a worker gone since: skipped */
	assert_int_equal(cstate_open(statep, "test", &st, err, sizeof(err)), 0);
	assert_int_equal(cstate_note_sched(st, "/nonexistent/admin.sock", getpid(), 0, tids, 2), 0);
	/* the first record wins */
	assert_int_equal(cstate_note_sched(st, "/other.sock", getpid(), 5, tids, 1), 0);
	assert_int_equal(cstate_save(st, err, sizeof(err)), 0);
	assert_false(cstate_empty(st));
	if (sched_setscheduler(tid, SCHED_FIFO, &sp) < 0) {
		pthread_cancel(th);
		pthread_join(th, NULL);
		cstate_free(st);
		unlink(statep);
		cg_sys_free(s);
		print_message("skip: SCHED_FIFO refused here (%s)\n", strerror(errno));
		skip();
	}
	assert_int_equal(sched_getscheduler(tid), SCHED_FIFO);
	assert_int_equal(cstate_load(statep, &st2, err, sizeof(err)), 0);
	assert_int_equal(cstate_revert(st2, s, NULL, NULL, err, sizeof(err)), 0);
	assert_int_equal(sched_getscheduler(tid), SCHED_OTHER);
	assert_int_equal(access(statep, F_OK), -1);
	pthread_cancel(th);
	pthread_join(th, NULL);
	cstate_free(st);
	cstate_free(st2);
	cg_sys_free(s);
}

/* Table: CPU list parsing and formatting. */
static void test_cpu_lists(void **state)
{
	static const struct {
		const char *in, *out;
	} ok[] = {
		{ "0", "0" }, { "0-3", "0-3" }, { "0,1,2,5", "0-2,5" }, { "4-7,0-1", "0-1,4-7" }, { " 3 ", "3" },
	};
	static const char *const bad[] = { "", "a", "3-1", "1,,2", "0-", "-1", "2048", "1;2" };
	char err[256], buf[128];
	cpu_set_t set;

	(void)state;
	for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
		assert_int_equal(aff_parse_list(ok[i].in, &set, err, sizeof(err)), 0);
		aff_format_list(&set, buf, sizeof(buf));
		assert_string_equal(buf, ok[i].out);
	}
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		assert_int_equal(aff_parse_list(bad[i], &set, err, sizeof(err)), -EINVAL);
	/* online check against the fixture (0-7 online) */
	assert_int_equal(aff_check_list(fx, "4-7", &set, err, sizeof(err)), 0);
	assert_int_equal(aff_check_list(fx, "6-9", &set, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "CPU 8 is not online"));
	assert_int_equal(aff_check_list(fx, "", &set, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "empty"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_revert_bytes_and_created),
		cmocka_unit_test(test_v2_subtree_control),
		cmocka_unit_test(test_bad_state_files),
		cmocka_unit_test(test_affinity_restored),
		cmocka_unit_test(test_sched_restored),
		cmocka_unit_test(test_cpu_lists),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
