/*
 * test_cgroup.c: the v1/v2 naming layer: mount detection, knob mapping,
 * conversions and validation on the cgroup v2 fixture tree (a copy under
 * /tmp), and the same calls live on this machine's cgroup v1 (root only;
 * skipped with the reason otherwise). Every live cgroup made is removed.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "controller/cgroup.h"

static char fx[512];

static int copy_fixture(void **state)
{
	char cmd[2400];
	const char *src = getenv("EDGE_FIXTURES") ? getenv("EDGE_FIXTURES") : "tests/fixtures";

	(void)state;
	snprintf(fx, sizeof(fx), "/tmp/ctl-cg-test.%d", (int)getpid());
	if (snprintf(cmd, sizeof(cmd), "rm -rf %s && mkdir -p %s && cp -a %s/cgroup-v2 %s/root", fx, fx, src, fx) >= (int)sizeof(cmd) ||
	    system(cmd) != 0)
		return -1;
	strcat(fx, "/root");
	return 0;
}

static int rm_fixture(void **state)
{
	char cmd[1200];

	(void)state;
	snprintf(cmd, sizeof(cmd), "rm -rf /tmp/ctl-cg-test.%d", (int)getpid());
	return system(cmd) == 0 ? 0 : -1;
}

static void read_file(const char *path, char *buf, size_t len)
{
	FILE *f = fopen(path, "r");
	size_t n;

	assert_non_null(f);
	n = fread(buf, 1, len - 1, f);
	buf[n] = 0;
	fclose(f);
}

static void test_v2_detect(void **state)
{
	char err[256];
	struct cg_sys *s = cg_sys_open(fx, err, sizeof(err));
	char want[600];

	(void)state;
	assert_non_null(s);
	assert_int_equal(cg_sys_mode(s, CG_CPU), CG_V2);
	assert_int_equal(cg_sys_mode(s, CG_CPUSET), CG_V2);
	assert_int_equal(cg_sys_mode(s, CG_MEMORY), CG_V2);
	assert_int_equal(cg_sys_mode(s, CG_CPUACCT), CG_V2);
	snprintf(want, sizeof(want), "%s/sys/fs/cgroup", fx);
	assert_string_equal(cg_sys_mount(s, CG_CPU), want);
	assert_false(cg_sys_uses_libcgroup(s, CG_CPU));
	cg_sys_free(s);
}

/* Table: what the user typed -> normalized name, or an error. */
static void test_normalize(void **state)
{
	static const struct {
		const char *in, *want;
		int ok;
	} cases[] = {
		{ .in = "/edge.slice/core", .want = "edge.slice/core", .ok = 1 },
		{ .in = "edge.slice//core/", .want = "edge.slice/core", .ok = 1 },
		{ .in = "/edge.slice/./core", .want = "edge.slice/core", .ok = 1 },
		{ .in = "/edge.slice/hog/../core", .want = "edge.slice/core", .ok = 1 },
		{ .in = "/", .want = "", .ok = 1 },
		{ .in = "../etc", .ok = 0 },
		{ .in = "/edge.slice/../../etc", .ok = 0 },
		{ .in = "", .ok = 0 },
	};
	char err[256], name[CG_NAME_MAX], path[1200];
	struct cg_sys *s = cg_sys_open(fx, err, sizeof(err));

	(void)state;
	assert_non_null(s);
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		int r = cg_normalize(s, cases[i].in, name, sizeof(name), err, sizeof(err));

		if (cases[i].ok) {
			assert_int_equal(r, 0);
			assert_string_equal(name, cases[i].want);
		} else {
			assert_int_equal(r, -EINVAL);
			assert_non_null(strstr(err, cases[i].in[0] ? "outside the cgroup hierarchy" : "empty"));
		}
	}
	/* a filesystem path under the mount */
	snprintf(path, sizeof(path), "%s/sys/fs/cgroup/edge.slice/core", fx);
	assert_int_equal(cg_normalize(s, path, name, sizeof(name), err, sizeof(err)), 0);
	assert_string_equal(name, "edge.slice/core");
	snprintf(path, sizeof(path), "%s/sys/fs/cgroup/../../../etc", fx);
	assert_int_equal(cg_normalize(s, path, name, sizeof(name), err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "outside the cgroup hierarchy"));
	cg_sys_free(s);
}

static void test_v2_knobs(void **state)
{
	char err[256], buf[256], p[1200];
	struct cg_sys *s = cg_sys_open(fx, err, sizeof(err));
	struct cg_file f[2];
	int64_t q, per, w, b;

	(void)state;
	assert_non_null(s);
	assert_int_equal(cg_knob_files(s, CG_KNOB_CPU_MAX, f), 1);
	assert_string_equal(f[0].file, "cpu.max");
	assert_int_equal(cg_knob_files(s, CG_KNOB_WEIGHT, f), 1);
	assert_string_equal(f[0].file, "cpu.weight");
	assert_int_equal(cg_knob_files(s, CG_KNOB_MEM_HIGH, f), 1);
	assert_string_equal(f[0].file, "memory.high");

	assert_int_equal(cg_get_cpu_max(s, "edge.slice/core", &q, &per, err, sizeof(err)), 0);
	assert_int_equal(q, -1);
	assert_int_equal(per, 100000);
	/* systemd CPUQuota=35% is "35000 100000" */
	assert_int_equal(cg_set_cpu_max(s, "edge.slice/core", 35000, 100000, err, sizeof(err)), 0);
	snprintf(p, sizeof(p), "%s/sys/fs/cgroup/edge.slice/core/cpu.max", fx);
	read_file(p, buf, sizeof(buf));
	assert_string_equal(buf, "35000 100000");
	assert_int_equal(cg_get_cpu_max(s, "edge.slice/core", &q, &per, err, sizeof(err)), 0);
	assert_int_equal(q, 35000);
	assert_int_equal(cg_set_cpu_max(s, "edge.slice/core", -1, 100000, err, sizeof(err)), 0);
	read_file(p, buf, sizeof(buf));
	assert_string_equal(buf, "max 100000");

	/* below the kernel's 1 ms: refused, nothing written */
	assert_int_equal(cg_set_cpu_max(s, "edge.slice/core", 999, 100000, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "below the kernel's minimum"));
	read_file(p, buf, sizeof(buf));
	assert_string_equal(buf, "max 100000");

	assert_int_equal(cg_get_weight(s, "edge.slice/core", &w, err, sizeof(err)), 0);
	assert_int_equal(w, 100);
	assert_int_equal(cg_set_weight(s, "edge.slice/core", 250, err, sizeof(err)), 0);
	assert_int_equal(cg_get_weight(s, "edge.slice/core", &w, err, sizeof(err)), 0);
	assert_int_equal(w, 250);
	assert_int_equal(cg_set_weight(s, "edge.slice/core", 0, err, sizeof(err)), -EINVAL);

	assert_int_equal(cg_set_cpus(s, "edge.slice/core", "4-7", err, sizeof(err)), 0);
	assert_int_equal(cg_get_cpus(s, "edge.slice/core", 0, buf, sizeof(buf), err, sizeof(err)), 0);
	assert_string_equal(buf, "4-7");
	assert_int_equal(cg_get_cpus(s, "edge.slice/core", 1, buf, sizeof(buf), err, sizeof(err)), 0);
	assert_string_equal(buf, "0-7");

	assert_int_equal(cg_get_mem(s, "edge.slice/core", CG_KNOB_MEM_MAX, &b, err, sizeof(err)), 0);
	assert_int_equal(b, 2147483648LL);
	assert_int_equal(cg_get_mem(s, "edge.slice/core", CG_KNOB_MEM_HIGH, &b, err, sizeof(err)), 0);
	assert_int_equal(b, -1);
	assert_int_equal(cg_set_mem(s, "edge.slice/core", CG_KNOB_MEM_HIGH, 1 << 30, err, sizeof(err)), 0);
	assert_int_equal(cg_get_mem(s, "edge.slice/core", CG_KNOB_MEM_HIGH, &b, err, sizeof(err)), 0);
	assert_int_equal(b, 1 << 30);

	/* a cgroup that does not exist */
	assert_true(cg_get_weight(s, "edge.slice/nope", &w, err, sizeof(err)) < 0);
	assert_non_null(strstr(err, "no such cgroup"));
	cg_sys_free(s);
}

static void test_v2_create_attach_remove(void **state)
{
	char err[256], p[1200], buf[64];
	struct cg_sys *s = cg_sys_open(fx, err, sizeof(err));
	char **created = NULL;
	size_t n = 0;
	struct stat st;

	(void)state;
	assert_non_null(s);
	assert_int_equal(cg_create(s, "edge.slice/new/deeper", (1u << CG_CPU) | (1u << CG_CPUSET) | (1u << CG_MEMORY),
				   &created, &n, err, sizeof(err)),
			 0);
	/* one tree on v2: each directory once, outermost first */
	assert_int_equal(n, 2);
	assert_string_equal(created[0], "cpu:edge.slice/new");
	assert_string_equal(created[1], "cpu:edge.slice/new/deeper");
	snprintf(p, sizeof(p), "%s/sys/fs/cgroup/edge.slice/new/deeper", fx);
	assert_int_equal(stat(p, &st), 0);
	/* attaching writes the pid into cgroup.procs (the fixture keeps what was written) */
	snprintf(p, sizeof(p), "%s/sys/fs/cgroup/edge.slice/core/cgroup.procs", fx);
	{
		char pp[1200];

		snprintf(pp, sizeof(pp), "%s/proc/1", fx);
		mkdir(pp, 0755);
	}
	assert_int_equal(cg_attach_pid(s, CG_CPU, "edge.slice/core", 1, err, sizeof(err)), 0);
	read_file(p, buf, sizeof(buf));
	assert_string_equal(buf, "1");
	assert_int_equal(cg_attach_pid(s, CG_CPU, "edge.slice/core", 999999, err, sizeof(err)), -ESRCH);
	assert_non_null(strstr(err, "no such process"));
	assert_int_equal(cg_remove(s, CG_CPU, "edge.slice/new/deeper", err, sizeof(err)), 0);
	assert_int_equal(cg_remove(s, CG_CPU, "edge.slice/new", err, sizeof(err)), 0);
	assert_int_equal(cg_remove(s, CG_CPU, "edge.slice/new", err, sizeof(err)), -ENOENT);
	for (size_t i = 0; i < n; i++)
		free(created[i]);
	free(created);
	cg_sys_free(s);
}

/* Table: the kernel's weight <-> shares mapping, clamped at both ends. */
static void test_weight_shares(void **state)
{
	static const struct {
		int64_t weight, shares;
	} w2s[] = {
		{ .weight = 100, .shares = 1024 }, { .weight = 1, .shares = 10 },	  { .weight = 50, .shares = 512 },
		{ .weight = 200, .shares = 2048 }, { .weight = 10000, .shares = 102400 }, { .weight = 0, .shares = 10 },
	};
	static const struct {
		int64_t shares, weight;
	} s2w[] = {
		{ .shares = 1024, .weight = 100 }, { .shares = 2, .weight = 1 },	     { .shares = 512, .weight = 50 },
		{ .shares = 262144, .weight = 10000 }, { .shares = 2048, .weight = 200 }, { .shares = 10, .weight = 1 },
	};

	(void)state;
	for (size_t i = 0; i < sizeof(w2s) / sizeof(w2s[0]); i++)
		assert_int_equal(cg_weight_to_shares(w2s[i].weight), w2s[i].shares);
	for (size_t i = 0; i < sizeof(s2w) / sizeof(s2w[0]); i++)
		assert_int_equal(cg_shares_to_weight(s2w[i].shares), s2w[i].weight);
}

static void test_check_cpu_max(void **state)
{
	static const struct {
		int64_t q, p;
		int ok;
	} cases[] = {
		{ .q = -1, .p = 100000, .ok = 1 },   { .q = 1000, .p = 100000, .ok = 1 }, { .q = 999, .p = 100000, .ok = 0 },
		{ .q = 0, .p = 100000, .ok = 0 },    { .q = 50000, .p = 999, .ok = 0 },   { .q = 50000, .p = 1000001, .ok = 0 },
		{ .q = 350000, .p = 100000, .ok = 1 },
	};
	char err[128];

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		assert_int_equal(cg_check_cpu_max(cases[i].q, cases[i].p, err, sizeof(err)) == 0, cases[i].ok);
}

static int live_v1(struct cg_sys **out)
{
	char err[256];

	if (geteuid() != 0) {
		print_message("skip: live cgroup test needs root\n");
		return 0;
	}
	*out = cg_sys_open("", err, sizeof(err));
	if (!*out || cg_sys_mode(*out, CG_CPU) != CG_V1) {
		print_message("skip: cpu controller is not on cgroup v1 here (%s)\n", *out ? "v2 or none" : err);
		cg_sys_free(*out);
		return 0;
	}
	return 1;
}

static void test_live_v1(void **state)
{
	struct cg_sys *s = NULL;
	char err[256], name[64], buf[128];
	char **created = NULL;
	size_t n = 0;
	int64_t q, p, w;

	(void)state;
	if (!live_v1(&s)) {
		skip();
		return;
	}
	assert_true(cg_sys_uses_libcgroup(s, CG_CPU));
	snprintf(name, sizeof(name), "edgectl-unit-%d", (int)getpid());
	/* v1 has no subtree_control: nothing to enable */
	assert_int_equal(cg_subtree_missing(s, name, (1u << CG_CPU) | (1u << CG_CPUSET), &created, &n, err, sizeof(err)), 0);
	assert_int_equal(n, 0);
	free(created);
	created = NULL;
	assert_int_equal(cg_create(s, name, (1u << CG_CPU) | (1u << CG_CPUSET), &created, &n, err, sizeof(err)), 0);
	assert_int_equal(n, 2); /* separate cpu and cpuset hierarchies on v1 */
	/* v1 cpuset: the new cgroup got its parent's CPUs and memory nodes */
	assert_int_equal(cg_get_cpus(s, name, 0, buf, sizeof(buf), err, sizeof(err)), 0);
	assert_true(strlen(buf) > 0);
	/* through libcgroup: quota and period land in cfs files, weight as shares */
	assert_int_equal(cg_set_cpu_max(s, name, 35000, 100000, err, sizeof(err)), 0);
	assert_int_equal(cg_read(s, CG_CPU, name, "cpu.cfs_quota_us", buf, sizeof(buf), err, sizeof(err)) > 0, 1);
	assert_string_equal(buf, "35000\n");
	assert_int_equal(cg_get_cpu_max(s, name, &q, &p, err, sizeof(err)), 0);
	assert_int_equal(q, 35000);
	assert_int_equal(p, 100000);
	assert_int_equal(cg_set_weight(s, name, 50, err, sizeof(err)), 0);
	assert_int_equal(cg_read(s, CG_CPU, name, "cpu.shares", buf, sizeof(buf), err, sizeof(err)) > 0, 1);
	assert_string_equal(buf, "512\n");
	assert_int_equal(cg_get_weight(s, name, &w, err, sizeof(err)), 0);
	assert_int_equal(w, 50);
	/* the kernel refuses an offline CPU: one clear message, value unchanged */
	assert_true(cg_set_cpus(s, name, "1000", err, sizeof(err)) < 0);
	assert_non_null(strstr(err, "cpuset.cpus"));
	/* move this test process in and out */
	assert_int_equal(cg_attach_pid(s, CG_CPU, name, getpid(), err, sizeof(err)), 0);
	assert_int_equal(cg_pid_cgroup(s, getpid(), CG_CPU, buf, sizeof(buf), err, sizeof(err)), 0);
	assert_string_equal(buf, name);
	assert_int_equal(cg_attach_pid(s, CG_CPU, "", getpid(), err, sizeof(err)), 0);
	assert_int_equal(cg_set_cpu_max(s, name, -1, 100000, err, sizeof(err)), 0);
	assert_int_equal(cg_get_cpu_max(s, name, &q, &p, err, sizeof(err)), 0);
	assert_int_equal(q, -1);
	for (size_t i = n; i-- > 0;) {
		char *c = strchr(created[i], ':');

		*c = 0;
		assert_int_equal(cg_remove(s, (enum cg_ctrl)cg_ctrl_from_name(created[i]), c + 1, err, sizeof(err)), 0);
		free(created[i]);
	}
	free(created);
	assert_false(cg_exists(s, CG_CPU, name));
	cg_sys_free(s);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_v2_detect),
		cmocka_unit_test(test_normalize),
		cmocka_unit_test(test_v2_knobs),
		cmocka_unit_test(test_v2_create_attach_remove),
		cmocka_unit_test(test_weight_shares),
		cmocka_unit_test(test_check_cpu_max),
		cmocka_unit_test(test_live_v1),
	};

	return cmocka_run_group_tests(tests, copy_fixture, rm_fixture);
}
