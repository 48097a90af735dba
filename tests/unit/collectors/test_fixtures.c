/*
 * test_fixtures.c: the collectors run on the fixture trees of a Jetson Orin
 * (JetPack 5 with cgroup v1, JetPack 6 with cgroup v2) and an RK3588, and
 * every value read is checked exactly against the files; then files are
 * made unreadable or malformed in a copy and the rest must still come out.
 * The trees are under tests/fixtures (EDGE_FIXTURES overrides).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <errno.h>

#include <cmocka.h>

#include "collectors/collect.h"
#include "collectors/snapshot.h"

static char fixtures[4096];

static int setup(void **state)
{
	const char *f = getenv("EDGE_FIXTURES");

	(void)state;
	snprintf(fixtures, sizeof(fixtures), "%s", f && *f ? f : "tests/fixtures");
	return 0;
}

static bool have(const char *tree, char *root, size_t len)
{
	snprintf(root, len, "%s/%s", fixtures, tree);
	if (access(root, F_OK)) {
		print_message("fixture tree %s not found (run from the repository root or set EDGE_FIXTURES)\n", root);
		return false;
	}
	return true;
}

static struct snap *profile(const char *root, const char *cgroup, int32_t pid)
{
	struct coll_opts o = { .kind = SNAP_TARGET_SYSTEM, .sysroot = root };
	struct coll *c = NULL;
	struct snap *s = snap_new();
	char err[256] = "";

	if (cgroup) {
		o.kind = SNAP_TARGET_CGROUP;
		o.cgroup = cgroup;
	} else if (pid) {
		o.kind = SNAP_TARGET_PID;
		o.pid = pid;
	}
	int r = coll_new(&o, &c, err, sizeof(err));
	if (r)
		print_message("coll_new: %s\n", err);
	assert_int_equal(r, 0);
	assert_int_equal(coll_tick(c, s), 0);
	coll_free(c);
	return s;
}

static const struct snap_thermal_zone *zone(const struct snap *s, const char *type)
{
	for (uint32_t i = 0; i < s->thermal.n; i++)
		if (!strcmp(s->thermal.z[i].type, type))
			return &s->thermal.z[i];
	fail_msg("no thermal zone %s", type);
	return NULL;
}

static const struct snap_source_info *source(const struct snap *s, const char *name)
{
	for (uint32_t i = 0; i < s->nsources; i++)
		if (!strcmp(s->sources[i].name, name))
			return &s->sources[i];
	fail_msg("no source %s", name);
	return NULL;
}

static void test_rk3588(void **state)
{
	char root[4200];

	(void)state;
	if (!have("rk3588", root, sizeof(root)))
		skip();
	struct snap *s = profile(root, "/edge/llm", 0);
	/* big.LITTLE: LITTLE first */
	assert_true(s->topo.st.valid);
	assert_int_equal(s->topo.ncpus, 8);
	assert_int_equal(s->topo.nonline, 8);
	assert_int_equal(s->topo.nclusters, 3);
	assert_int_equal(s->topo.cluster[0].cpumask[0], 0x0f);
	assert_int_equal(s->topo.cluster[0].capacity, 414);
	assert_int_equal(s->topo.cluster[0].max_khz, 1800000);
	assert_int_equal(s->topo.cluster[0].policy, 0);
	assert_int_equal(s->topo.cluster[1].cpumask[0], 0x30);
	assert_int_equal(s->topo.cluster[1].capacity, 1024);
	assert_int_equal(s->topo.cluster[1].cur_khz, 2208000);
	assert_int_equal(s->topo.cluster[2].cpumask[0], 0xc0);
	assert_int_equal(s->topo.cluster[2].cpuinfo_max_khz, 2400000);
	assert_string_equal(s->topo.cluster[2].governor, "schedutil");
	assert_int_equal(s->topo.cpu[3].cluster, 0);
	assert_int_equal(s->topo.cpu[3].capacity, 414);
	assert_int_equal(s->topo.cpu[5].cluster, 1);
	assert_int_equal(s->topo.cpu[7].cluster, 2);
	assert_int_equal(s->topo.cpu[7].cur_khz, 2400000);
	/* thermal */
	assert_true(s->thermal.st.valid);
	assert_int_equal(s->thermal.n, 7);
	assert_int_equal(zone(s, "bigcore0-thermal")->temp_mc, 43437);
	assert_int_equal(zone(s, "npu-thermal")->temp_mc, 44375);
	assert_int_equal(s->thermal.max_temp_mc, 44375);
	/* GPU (NN@FREQHz) and NPU (debugfs, 3 cores) */
	assert_true(s->accel.st.valid);
	assert_int_equal(s->accel.n, 2);
	assert_int_equal(s->accel.a[0].kind, SNAP_ACCEL_RK_GPU);
	assert_string_equal(s->accel.a[0].name, "fb000000.gpu");
	assert_true(s->accel.a[0].load_pct == 37.0);
	assert_int_equal(s->accel.a[0].cur_freq_hz, 800000000);
	assert_int_equal(s->accel.a[1].kind, SNAP_ACCEL_RKNPU);
	assert_int_equal(s->accel.a[1].ncores, 3);
	assert_true(s->accel.a[1].core_pct[0] == 12.0);
	assert_true(s->accel.a[1].core_pct[1] == 0.0);
	assert_true(s->accel.a[1].core_pct[2] == 40.0);
	assert_true(s->accel.a[1].load_pct > 17.33 && s->accel.a[1].load_pct < 17.34);
	assert_int_equal(s->accel.a[1].cur_freq_hz, 1000000000);
	/* cgroup v2 */
	assert_true(s->cgroup.st.valid);
	assert_int_equal(s->cgroup.version, SNAP_CG_V2);
	assert_string_equal(s->cgroup.path, "/edge/llm");
	assert_int_equal(s->cgroup.usage_ns, 98765432000ULL);
	assert_int_equal(s->cgroup.nr_throttled, 250);
	assert_int_equal(s->cgroup.throttled_ns, 1500000000ULL);
	assert_int_equal(s->cgroup.quota_us, 300000);
	assert_int_equal(s->cgroup.period_us, 100000);
	assert_int_equal(s->cgroup.weight, 200);
	assert_int_equal(s->cgroup.mem_current_bytes, 2147483648ULL);
	assert_true(s->cgroup.mem_max_bytes == SNAP_UNLIMITED);
	assert_int_equal(s->cgroup.mem_high_bytes, 6442450944ULL);
	assert_int_equal(s->cgroup.mem_peak_bytes, 2684354560ULL);
	assert_int_equal(s->cgroup.mem_events_high, 12);
	assert_int_equal(s->cgroup.nr_tasks, 2);
	assert_true(s->cgroup.psi.st.valid);
	assert_true(s->cgroup.psi.cpu.some.avg10 == 12.5);
	assert_int_equal(s->cgroup.psi.cpu.full.total_us, 1000000);
	/* system PSI */
	assert_true(s->psi.st.valid);
	assert_true(s->psi.io.some.avg10 == 2.25);
	assert_true(s->psi.memory.has_full);
	assert_int_equal(s->psi.io.full.total_us, 55555);
	/* sources: no BPF on a fixture, procfs is the fallback */
	assert_false(source(s, "bpf-sched")->live);
	assert_non_null(strstr(source(s, "bpf-sched")->why, "not the running system"));
	assert_true(source(s, "procfs")->live);
	assert_int_equal(s->cpus.st.source, SNAP_SRC_PROCFS);
	assert_int_equal(s->cpus.n, 8);
	snap_free(s);
}

static void test_orin_jp5_v1(void **state)
{
	char root[4200];

	(void)state;
	if (!have("jetson-orin-jp5", root, sizeof(root)))
		skip();
	struct snap *s = profile(root, "/edge/llm", 0);
	assert_int_equal(s->topo.nclusters, 2);
	assert_int_equal(s->topo.cluster[0].cpumask[0], 0x0f);
	assert_int_equal(s->topo.cluster[0].capacity, 1024); /* no cpu_capacity: symmetric */
	assert_int_equal(s->topo.cluster[1].cur_khz, 729600);
	assert_int_equal(s->thermal.n, 9);
	assert_int_equal(zone(s, "CPU-therm")->temp_mc, 45500);
	assert_int_equal(zone(s, "CV0-therm")->temp_mc, -256000);
	assert_int_equal(zone(s, "tj-therm")->temp_mc, 46000);
	assert_int_equal(s->thermal.max_temp_mc, 46000);
	assert_int_equal(s->accel.n, 1);
	assert_int_equal(s->accel.a[0].kind, SNAP_ACCEL_JETSON_GPU);
	assert_string_equal(s->accel.a[0].name, "17000000.ga10b");
	assert_true(s->accel.a[0].load_pct > 46.29 && s->accel.a[0].load_pct < 46.31); /* 463 per-mille */
	assert_int_equal(s->accel.a[0].cur_freq_hz, 918000000);
	/* cgroup v1 on a combined cpu,cpuacct mount and a memory mount */
	assert_true(s->cgroup.st.valid);
	assert_string_equal(s->cgroup.st.err, "");
	assert_int_equal(s->cgroup.version, SNAP_CG_V1);
	assert_int_equal(s->cgroup.usage_ns, 123456789000ULL);
	assert_int_equal(s->cgroup.nr_periods, 5000);
	assert_int_equal(s->cgroup.nr_throttled, 120);
	assert_int_equal(s->cgroup.throttled_ns, 3456000000ULL);
	assert_int_equal(s->cgroup.quota_us, 200000);
	assert_int_equal(s->cgroup.period_us, 100000);
	assert_int_equal(s->cgroup.shares, 2048);
	assert_int_equal(s->cgroup.weight, 1 + (2046 * 9999) / 262142);
	assert_int_equal(s->cgroup.mem_current_bytes, 3221225472ULL);
	assert_int_equal(s->cgroup.mem_max_bytes, 4294967296ULL);
	assert_int_equal(s->cgroup.mem_peak_bytes, 3758096384ULL);
	assert_int_equal(s->cgroup.mem_events_max, 7);
	assert_int_equal(s->cgroup.mem_events_oom_kill, 1);
	assert_false(s->cgroup.under_oom);
	assert_int_equal(s->cgroup.nr_tasks, 2);
	snap_free(s);
}

static void test_orin_jp6_v2_pid(void **state)
{
	char root[4200];

	(void)state;
	if (!have("jetson-orin-jp6", root, sizeof(root)))
		skip();
	/* a pid target: its cgroup comes from /proc/PID/cgroup */
	struct snap *s = profile(root, NULL, 4242);
	assert_int_equal(s->accel.a[0].kind, SNAP_ACCEL_JETSON_GPU);
	assert_string_equal(s->accel.a[0].name, "17000000.gpu");
	assert_true(s->accel.a[0].load_pct == 100.0);
	assert_int_equal(s->cgroup.version, SNAP_CG_V2);
	assert_string_equal(s->cgroup.path, "/edge/llm");
	assert_int_equal(s->cgroup.weight, 200);
	assert_int_equal(zone(s, "gpu-thermal")->temp_mc, 49500);
	assert_int_equal(s->target.kind, SNAP_TARGET_PID);
	assert_int_equal(s->target.pid, 4242);
	snap_free(s);
}

static void test_bad_targets(void **state)
{
	char root[4200], err[256] = "";
	struct coll *c = NULL;

	(void)state;
	if (!have("rk3588", root, sizeof(root)))
		skip();
	struct coll_opts o = { .kind = SNAP_TARGET_CGROUP, .cgroup = "/nope", .sysroot = root };
	assert_int_equal(coll_new(&o, &c, err, sizeof(err)), -ENOENT);
	assert_string_equal(err, "cgroup /nope: no such cgroup");
	assert_null(c);
	o.cgroup = "relative";
	assert_int_equal(coll_new(&o, &c, err, sizeof(err)), -EINVAL);
	o.kind = SNAP_TARGET_PID;
	o.pid = 99999;
	assert_int_equal(coll_new(&o, &c, err, sizeof(err)), -ENOENT);
	assert_string_equal(err, "pid 99999: no such process");
	o.kind = SNAP_TARGET_SYSTEM;
	o.sysroot = "/nonexistent/root";
	assert_int_equal(coll_new(&o, &c, err, sizeof(err)), -ENOENT);
}

/* copy a tree, then break files in it */
static bool copy_tree(const char *from, char *to, size_t len)
{
	char cmd[9000];

	snprintf(to, len, "/tmp/edge-fixture.XXXXXX");
	if (!mkdtemp(to))
		return false;
	snprintf(cmd, sizeof(cmd), "cp -a '%s/.' '%s/'", from, to);
	return system(cmd) == 0;
}

static void put(const char *root, const char *rel, const char *text)
{
	char path[4400];
	FILE *f;

	snprintf(path, sizeof(path), "%s%s", root, rel);
	f = fopen(path, "w");
	assert_non_null(f);
	fputs(text, f);
	fclose(f);
}

static void test_malformed(void **state)
{
	char root[4200], tmp[4200], cmd[4400];

	(void)state;
	if (!have("rk3588", root, sizeof(root)))
		skip();
	assert_true(copy_tree(root, tmp, sizeof(tmp)));
	put(tmp, "/sys/class/devfreq/fb000000.gpu/load", "busy\n");
	put(tmp, "/sys/class/thermal/thermal_zone1/temp", "hot\n");
	put(tmp, "/sys/kernel/debug/rknpu/load", "NPU load:  Core0: x%,\n");
	put(tmp, "/sys/fs/cgroup/edge/llm/cpu.max", "lots 100000\n");
	put(tmp, "/proc/pressure/io", "garbage\n");
	snprintf(cmd, sizeof(cmd), "%s/sys/devices/system/cpu/cpufreq/policy6/scaling_cur_freq", tmp);
	unlink(cmd);
	struct snap *s = profile(tmp, "/edge/llm", 0);
	/* GPU: named and invalid; NPU likewise; the group says why */
	assert_int_equal(s->accel.n, 2);
	assert_false(s->accel.a[0].st.valid);
	assert_non_null(strstr(s->accel.a[0].st.err, "fb000000.gpu/load: malformed"));
	assert_false(s->accel.a[1].st.valid);
	assert_non_null(strstr(s->accel.a[1].st.err, "rknpu/load: malformed"));
	/* one zone bad, the others read */
	assert_true(s->thermal.st.valid);
	assert_non_null(strstr(s->thermal.st.err, "thermal_zone1/temp: malformed"));
	assert_false(zone(s, "bigcore0-thermal")->valid);
	assert_int_equal(zone(s, "npu-thermal")->temp_mc, 44375);
	/* cgroup: cpu.max named, the rest read */
	assert_true(s->cgroup.st.valid);
	assert_non_null(strstr(s->cgroup.st.err, "cpu.max: malformed"));
	assert_int_equal(s->cgroup.weight, 200);
	assert_int_equal(s->cgroup.mem_current_bytes, 2147483648ULL);
	/* PSI: io bad, cpu still there */
	assert_true(s->psi.st.valid);
	assert_false(s->psi.io.valid);
	assert_true(s->psi.cpu.valid);
	assert_non_null(strstr(s->psi.st.err, "pressure/io: malformed"));
	/* topology: a missing cpufreq file noted, clusters intact */
	assert_int_equal(s->topo.nclusters, 3);
	assert_non_null(strstr(s->topo.st.err, "policy6/scaling_cur_freq"));
	/* and the JSON form still encodes and decodes */
	char *buf = malloc(1 << 20);
	int n = snap_to_json(s, buf, 1 << 20);
	assert_true(n > 0 && n < (1 << 20));
	struct snap *back = snap_new();
	char err[128];
	assert_int_equal(snap_from_json(back, buf, err, sizeof(err)), 0);
	assert_string_equal(back->accel.a[0].st.err, s->accel.a[0].st.err);
	free(buf);
	snap_free(back);
	snap_free(s);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmp);
	assert_int_equal(system(cmd), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_rk3588),
		cmocka_unit_test(test_orin_jp5_v1),
		cmocka_unit_test(test_orin_jp6_v2_pid),
		cmocka_unit_test(test_bad_targets),
		cmocka_unit_test(test_malformed),
	};
	return cmocka_run_group_tests(tests, setup, NULL);
}
