/*
 * cmd_tune.c: 'edgectl tune': profile a process or a cgroup, print a plan
 * (CPUs, CPU quota, weight, and the thread count when the target is
 * dify-edge) with the measurements behind it, and with --apply apply it.
 *
 * DESIGN
 * Everything is checked before anything is touched: the target exists, the
 * cgroup is inside the hierarchy, user overrides (--cpus, --quota, --weight)
 * are valid. With --apply the previous values are written to the state file
 * (fsync'd) before the first change; then, for a pid, the process is moved
 * into a cgroup of its own (edgectl/tune-PID in the cpu hierarchy) whose
 * cpu.max and weight are set, and every thread is pinned with
 * sched_setaffinity; for a cgroup, its own cpu.max and weight are set and
 * its CPUs go to cpuset.cpus when it has a cpuset directory (per-thread
 * affinity otherwise). The result is read back and compared with the plan;
 * if any step fails, everything done so far is reverted from the state.
 *
 * EDGECTL_TEST_STEP_DELAY_MS=N sleeps N ms between apply steps, so tests can
 * kill -9 edgectl in the middle and check that 'edgectl revert' still works.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli/cmds.h"
#include "collectors/collect.h"
#include "collectors/snapshot.h"
#include "controller/admin.h"
#include "controller/affinity.h"
#include "controller/cgroup.h"
#include "controller/config.h"
#include "controller/policy.h"
#include "controller/sample.h"
#include "controller/state.h"

#define MAX_SAMPLES 4096

static void usage(FILE *f)
{
	fprintf(f,
		"usage: edgectl tune (--pid P | --cgroup PATH) [--duration 10s] [--dry-run | --apply]\n"
		"                    [--emit systemd] [--state FILE] [--config FILE]\n"
		"                    [--cpus LIST] [--quota PCT%% | --quota QUOTA_US] [--weight W]\n"
		"                    [--admin-socket PATH]\n"
		"\n"
		"Profile the target, print a plan with the measured reasons; --apply applies it\n"
		"(previous values saved first; 'edgectl revert' undoes it).\n"
		"  --pid P           a process (all its threads)\n"
		"  --cgroup PATH     a cgroup: a name (/edge/core) or a path under a cgroup mount\n"
		"  --duration D      profiling time (default [tune] duration, 10s)\n"
		"  --dry-run         print the plan only (the default)\n"
		"  --apply           apply the plan\n"
		"  --emit systemd    also print a systemd drop-in (CPUQuota=, CPUWeight=, AllowedCPUs=)\n"
		"  --state FILE      revert state (default $EDGECTL_STATE or %s)\n"
		"  --cpus LIST       use these CPUs instead of the planned ones (must be online)\n"
		"  --quota Q         use this quota: a percentage of one CPU (35%%) or microseconds per period\n"
		"  --weight W        use this cpu.weight (1..10000)\n"
		"  --admin-socket P  dify-edge's admin socket (thread count, when the target is dify-edge)\n"
		"\n"
		"examples:\n"
		"  edgectl tune --pid 1234 --duration 5s\n"
		"  edgectl tune --pid 1234 --apply && edgectl revert\n"
		"  edgectl tune --cgroup /edge/core --emit systemd\n",
		CSTATE_DEFAULT_PATH);
}

struct target {
	int by_cgroup;
	pid_t pid;
	char cgroup[CG_NAME_MAX];     /* normalized */
	char comm[64];
};

static void comm_of(const char *root, pid_t pid, char *buf, size_t len)
{
	char p[1100];
	FILE *f;

	snprintf(p, sizeof(p), "%s/proc/%d/comm", root, (int)pid);
	buf[0] = 0;
	f = fopen(p, "re");
	if (!f)
		return;
	if (fgets(buf, (int)len, f))
		buf[strcspn(buf, "\n")] = 0;
	fclose(f);
}

static int target_pids(const struct cg_sys *s, const struct target *t, pid_t **pids, size_t *n, char *err,
		       size_t errlen)
{
	if (!t->by_cgroup) {
		*pids = malloc(sizeof(pid_t));
		if (!*pids)
			return -ENOMEM;
		(*pids)[0] = t->pid;
		*n = 1;
		return 0;
	}
	return cg_pids(s, CG_CPU, t->cgroup, pids, n, err, errlen);
}

static void sleep_ms(double ms)
{
	struct timespec ts = { .tv_sec = (time_t)(ms / 1000), .tv_nsec = (long)(fmod(ms, 1000) * 1e6) };

	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

static void step_delay(void)
{
	const char *e = getenv("EDGECTL_TEST_STEP_DELAY_MS");

	if (e && atoi(e) > 0)
		sleep_ms(atoi(e));
}

/* The CPUs the target may use: its cpuset (effective) if mounted, else online. */
static int allowed_cpus(const struct cg_sys *s, const struct target *t, cpu_set_t *set, char *err, size_t errlen)
{
	char name[CG_NAME_MAX], list[1024];
	cpu_set_t on;
	int ret = aff_online(cg_sys_root(s), &on, err, errlen);

	if (ret < 0)
		return ret;
	*set = on;
	if (cg_sys_mode(s, CG_CPUSET) == CG_NONE)
		return 0;
	if (t->by_cgroup)
		snprintf(name, sizeof(name), "%s", t->cgroup);
	else if (cg_pid_cgroup(s, t->pid, CG_CPUSET, name, sizeof(name), NULL, 0) < 0)
		return 0;
	if (!cg_exists(s, CG_CPUSET, name) || cg_get_cpus(s, name, 1, list, sizeof(list), NULL, 0) < 0 ||
	    aff_parse_list(list, set, NULL, 0) < 0) {
		*set = on;
		return 0;
	}
	CPU_AND(set, set, &on);
	return 0;
}

static int parse_quota(const char *arg, int64_t period, int64_t *q, char *err, size_t errlen)
{
	char *end;
	double v;

	errno = 0;
	v = strtod(arg, &end);
	if (errno || end == arg || !isfinite(v) || v <= 0 || (*end && strcmp(end, "%") && strcmp(end, "us"))) {
		snprintf(err, errlen, "--quota '%s': want a percentage of one CPU (35%%) or microseconds (35000)", arg);
		return -EINVAL;
	}
	*q = !strcmp(end, "%") ? (int64_t)llround(v / 100.0 * (double)period) : (int64_t)llround(v);
	return cg_check_cpu_max(*q, period, err, errlen);
}

static void print_revert_line(void *ud, const char *line)
{
	(void)ud;
	fprintf(stderr, "edgectl: tune: undo: %s\n", line);
}

struct applied {
	int64_t quota, period, weight;
	char cpus[256];
	int nthreads_ok, nthreads;
};

/* Apply plan to the target; state first. Returns 0, or negative with err set (and everything undone). */
static int apply(const struct cg_sys *s, const char *state_path, const struct target *t, const struct pol_plan *p,
		 const cpu_set_t *cpus, const char *admin_sock, char *err, size_t errlen)
{
	struct cstate *st = NULL;
	char cgname[CG_NAME_MAX], e2[512];
	char **created = NULL;
	size_t ncreated = 0;
	pid_t *pids = NULL;
	size_t npids = 0;
	int ret, use_cpuset = 0;

	ret = cstate_open(state_path, "edgectl tune", &st, err, errlen);
	if (ret < 0)
		goto out;
	ret = target_pids(s, t, &pids, &npids, err, errlen);
	if (ret < 0)
		goto out;
	if (t->by_cgroup) {
		snprintf(cgname, sizeof(cgname), "%s", t->cgroup);
		use_cpuset = cg_exists(s, CG_CPUSET, cgname);
		ret = cstate_note_knob(st, s, CG_KNOB_CPU_MAX, cgname, err, errlen);
		if (!ret)
			ret = cstate_note_knob(st, s, CG_KNOB_WEIGHT, cgname, err, errlen);
		if (!ret && use_cpuset)
			ret = cstate_note_knob(st, s, CG_KNOB_CPUS, cgname, err, errlen);
	} else {
		snprintf(cgname, sizeof(cgname), "edgectl/tune-%d", (int)t->pid);
		ret = cstate_note_membership(st, s, t->pid, CG_CPU, err, errlen);
		if (!ret && !cg_exists(s, CG_CPU, "edgectl"))
			ret = cstate_note_created(st, CG_CPU, "edgectl");
		if (!ret && !cg_exists(s, CG_CPU, cgname))
			ret = cstate_note_created(st, CG_CPU, cgname);
		/* v2: controllers cg_create will enable in the ancestors' subtree_control */
		if (!ret)
			ret = cstate_note_subtree_missing(st, s, cgname, 1u << CG_CPU, err, errlen);
		if (!ret && cg_exists(s, CG_CPU, cgname)) {
			/* adopted from an earlier tune: its values are ours to restore too */
			ret = cstate_note_knob(st, s, CG_KNOB_CPU_MAX, cgname, err, errlen);
			if (!ret)
				ret = cstate_note_knob(st, s, CG_KNOB_WEIGHT, cgname, err, errlen);
		}
	}
	/* affinity of every thread: recorded even when cpuset carries the CPUs */
	for (size_t i = 0; i < npids && !ret; i++) {
		ret = cstate_note_affinity(st, cg_sys_root(s), pids[i], err, errlen);
		if (ret == -ESRCH)
			ret = 0; /* exited since listed */
	}
	if (!ret && p->threads > 0 && admin_sock) {
		struct cadmin_stats as;

		if (cadmin_get_stats(admin_sock, &as, e2, sizeof(e2)) == 0 && as.threads > 0)
			ret = cstate_note_threads(st, admin_sock, (int)as.threads);
	}
	if (ret < 0)
		goto out;
	ret = cstate_save(st, err, errlen);
	if (ret < 0)
		goto out;

	/* the state is on disk: now change things, one step at a time */
	if (!t->by_cgroup) {
		ret = cg_create(s, cgname, 1u << CG_CPU, &created, &ncreated, err, errlen);
		if (ret < 0)
			goto undo;
		step_delay();
		ret = cg_attach_pid(s, CG_CPU, cgname, t->pid, err, errlen);
		if (ret < 0)
			goto undo;
		step_delay();
	}
	ret = cg_set_cpu_max(s, cgname, p->quota_us, p->period_us, err, errlen);
	if (ret < 0)
		goto undo;
	step_delay();
	ret = cg_set_weight(s, cgname, p->weight, err, errlen);
	if (ret < 0)
		goto undo;
	step_delay();
	if (use_cpuset) {
		ret = cg_set_cpus(s, cgname, p->cpus, err, errlen);
		if (ret < 0)
			goto undo;
		step_delay();
	}
	for (size_t i = 0; i < npids; i++) {
		ret = aff_set_process(cg_sys_root(s), pids[i], cpus, err, errlen);
		if (ret == -ESRCH)
			continue;
		if (ret < 0)
			goto undo;
		step_delay();
	}
	if (p->threads > 0 && admin_sock) {
		ret = cadmin_set_threads(admin_sock, p->threads, err, errlen);
		if (ret < 0)
			goto undo;
	}
	ret = 0;
	goto out;
undo:
	if (cstate_revert(st, s, print_revert_line, NULL, e2, sizeof(e2)) < 0)
		fprintf(stderr, "edgectl: tune: undo incomplete (%s); state kept in %s\n", e2, state_path);
out:
	for (size_t i = 0; i < ncreated; i++)
		free(created[i]);
	free(created);
	free(pids);
	cstate_free(st);
	return ret;
}

/* Read back what the target has now and compare with the plan. */
static int verify(const struct cg_sys *s, const struct target *t, const struct pol_plan *p, const cpu_set_t *cpus,
		  struct applied *a, char *err, size_t errlen)
{
	char cgname[CG_NAME_MAX];
	pid_t *pids = NULL;
	size_t npids = 0;
	int ret;

	if (t->by_cgroup)
		snprintf(cgname, sizeof(cgname), "%s", t->cgroup);
	else
		snprintf(cgname, sizeof(cgname), "edgectl/tune-%d", (int)t->pid);
	memset(a, 0, sizeof(*a));
	ret = cg_get_cpu_max(s, cgname, &a->quota, &a->period, err, errlen);
	if (!ret)
		ret = cg_get_weight(s, cgname, &a->weight, err, errlen);
	if (!ret)
		ret = target_pids(s, t, &pids, &npids, err, errlen);
	if (ret < 0)
		goto out;
	for (size_t i = 0; i < npids; i++) {
		pid_t *tids = NULL;
		size_t nt = 0;

		if (aff_tids(cg_sys_root(s), pids[i], &tids, &nt, NULL, 0) < 0)
			continue;
		for (size_t j = 0; j < nt; j++) {
			cpu_set_t got;

			if (aff_get(tids[j], &got, NULL, 0) < 0)
				continue;
			a->nthreads++;
			if (CPU_EQUAL(&got, cpus))
				a->nthreads_ok++;
			else
				aff_format_list(&got, a->cpus, sizeof(a->cpus));
		}
		free(tids);
	}
	if (a->nthreads_ok == a->nthreads)
		aff_format_list(cpus, a->cpus, sizeof(a->cpus));
	if (a->quota != p->quota_us || a->period != p->period_us) {
		snprintf(err, errlen, "cgroup /%s: cpu.max reads %" PRId64 " %" PRId64 ", planned %" PRId64 " %" PRId64, cgname,
			 a->quota, a->period, p->quota_us, p->period_us);
		ret = -EIO;
	} else if (a->weight != p->weight &&
		   !(cg_sys_mode(s, CG_CPU) == CG_V1 && cg_weight_to_shares(a->weight) == cg_weight_to_shares(p->weight))) {
		snprintf(err, errlen, "cgroup /%s: weight reads %" PRId64 ", planned %" PRId64, cgname, a->weight, p->weight);
		ret = -EIO;
	} else if (a->nthreads_ok != a->nthreads) {
		snprintf(err, errlen, "%d of %d threads have affinity %s, planned %s", a->nthreads - a->nthreads_ok,
			 a->nthreads, a->cpus, p->cpus);
		ret = -EIO;
	}
out:
	free(pids);
	return ret;
}

static void emit_systemd(const struct cg_sys *s, const struct pol_plan *p)
{
	printf("\n# systemd drop-in, e.g. /etc/systemd/system/UNIT.service.d/50-edgectl.conf\n");
	printf("[Service]\n");
	if (p->quota_us < 0)
		printf("CPUQuota=\n");
	else
		printf("CPUQuota=%g%%\n", (double)p->quota_us * 100.0 / (double)p->period_us);
	if (p->period_us != 100000)
		printf("CPUQuotaPeriodSec=%gms\n", (double)p->period_us / 1000.0);
	printf("CPUWeight=%" PRId64 "\n", p->weight);
	if (cg_sys_mode(s, CG_CPUSET) == CG_V2)
		printf("AllowedCPUs=%s\n", p->cpus);
	else
		printf("# AllowedCPUs= needs the cpuset controller on cgroup v2 (it is on %s here);\n"
		       "# CPUAffinity= pins the unit's processes instead:\n"
		       "CPUAffinity=%s\n",
		       cg_mode_name(cg_sys_mode(s, CG_CPUSET)), p->cpus);
}

int cmd_tune(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "pid", required_argument, NULL, 'p' },
		{ "cgroup", required_argument, NULL, 'g' },
		{ "duration", required_argument, NULL, 'd' },
		{ "dry-run", no_argument, NULL, 'n' },
		{ "apply", no_argument, NULL, 'a' },
		{ "emit", required_argument, NULL, 'e' },
		{ "state", required_argument, NULL, 's' },
		{ "config", required_argument, NULL, 'c' },
		{ "cpus", required_argument, NULL, 'C' },
		{ "quota", required_argument, NULL, 'Q' },
		{ "weight", required_argument, NULL, 'W' },
		{ "admin-socket", required_argument, NULL, 'A' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	struct ccfg cfg;
	struct target t = { 0 };
	struct cg_sys *s = NULL;
	struct csample *cs = NULL;
	struct coll *coll = NULL;
	struct snap **hist = NULL;
	size_t nh = 0;
	struct pol_plan plan;
	cpu_set_t allowed, cpus;
	const char *root = getenv("EDGE_SYSROOT");
	const char *pid_arg = NULL, *cg_arg = NULL, *dur_arg = NULL, *emit = NULL, *state_path = NULL;
	const char *cfg_path = NULL, *cpus_arg = NULL, *quota_arg = NULL, *weight_arg = NULL, *admin_sock = NULL;
	int do_apply = 0, dry = 0, rc = 1, o, ret;
	double dur;
	int64_t quota_override = 0, weight_override = 0;
	pid_t *pids = NULL;
	size_t npids = 0;
	char err[1024];

	optind = 1;
	opterr = 0;
	while ((o = getopt_long(argc, argv, "+h", opts, NULL)) != -1) {
		switch (o) {
		case 'p': pid_arg = optarg; break;
		case 'g': cg_arg = optarg; break;
		case 'd': dur_arg = optarg; break;
		case 'n': dry = 1; break;
		case 'a': do_apply = 1; break;
		case 'e': emit = optarg; break;
		case 's': state_path = optarg; break;
		case 'c': cfg_path = optarg; break;
		case 'C': cpus_arg = optarg; break;
		case 'Q': quota_arg = optarg; break;
		case 'W': weight_arg = optarg; break;
		case 'A': admin_sock = optarg; break;
		case 'h': usage(stdout); return 0;
		default:
			fprintf(stderr, "edgectl: tune: unknown or incomplete option '%s' (see edgectl tune --help)\n",
				argv[optind - 1]);
			return 2;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "edgectl: tune: unexpected argument '%s'\n", argv[optind]);
		return 2;
	}
	if (!pid_arg == !cg_arg) {
		fprintf(stderr, "edgectl: tune: give exactly one of --pid or --cgroup (see edgectl tune --help)\n");
		return 2;
	}
	if (do_apply && dry) {
		fprintf(stderr, "edgectl: tune: --dry-run and --apply exclude each other\n");
		return 2;
	}
	if (emit && strcmp(emit, "systemd")) {
		fprintf(stderr, "edgectl: tune: --emit '%s': only 'systemd' is known\n", emit);
		return 2;
	}
	ccfg_defaults(&cfg);
	if (cfg_path && ccfg_load(&cfg, cfg_path, err, sizeof(err)) < 0) {
		fprintf(stderr, "edgectl: %s\n", err);
		return 2;
	}
	dur = cfg.tune_duration_s;
	if (dur_arg && (ccfg_parse_duration(dur_arg, &dur) < 0 || dur < 0.2 || dur > 86400)) {
		fprintf(stderr, "edgectl: tune: --duration '%s': want a duration from 200ms to 24h (e.g. 10s)\n", dur_arg);
		return 2;
	}
	if (!state_path)
		state_path = cstate_default_path();

	s = cg_sys_open(root, err, sizeof(err));
	if (!s) {
		fprintf(stderr, "edgectl: tune: %s\n", err);
		goto out;
	}
	if (cg_sys_mode(s, CG_CPU) == CG_NONE) {
		fprintf(stderr, "edgectl: tune: the cgroup cpu controller is not mounted\n");
		goto out;
	}
	if (pid_arg) {
		char *end;
		long v = strtol(pid_arg, &end, 10);

		if (*end || v <= 0 || v > 4194304) {
			fprintf(stderr, "edgectl: tune: --pid '%s': not a process id\n", pid_arg);
			rc = 2;
			goto out;
		}
		t.pid = (pid_t)v;
		if (cg_check_pid(s, t.pid, err, sizeof(err)) < 0) {
			fprintf(stderr, "edgectl: %s\n", err);
			rc = 2;
			goto out;
		}
		comm_of(cg_sys_root(s), t.pid, t.comm, sizeof(t.comm));
	} else {
		t.by_cgroup = 1;
		if (cg_normalize(s, cg_arg, t.cgroup, sizeof(t.cgroup), err, sizeof(err)) < 0) {
			fprintf(stderr, "edgectl: %s\n", err);
			rc = 2;
			goto out;
		}
		if (!cg_exists(s, CG_CPU, t.cgroup)) {
			fprintf(stderr, "edgectl: cgroup %s: no such cgroup in the cpu hierarchy (%s)\n", cg_arg,
				cg_sys_mount(s, CG_CPU));
			rc = 2;
			goto out;
		}
		if (!t.cgroup[0]) {
			fprintf(stderr, "edgectl: cgroup %s: the root cgroup cannot be tuned\n", cg_arg);
			rc = 2;
			goto out;
		}
	}
	/* user overrides, validated before anything else happens */
	if (quota_arg && parse_quota(quota_arg, cfg.period_us, &quota_override, err, sizeof(err)) < 0) {
		fprintf(stderr, "edgectl: tune: %s\n", err);
		rc = 2;
		goto out;
	}
	if (weight_arg) {
		char *end;

		weight_override = strtoll(weight_arg, &end, 10);
		if (*end || weight_override < 1 || weight_override > 10000) {
			fprintf(stderr, "edgectl: tune: --weight '%s': want an integer 1..10000\n", weight_arg);
			rc = 2;
			goto out;
		}
	}
	if (cpus_arg && aff_check_list(cg_sys_root(s), cpus_arg, &cpus, err, sizeof(err)) < 0) {
		fprintf(stderr, "edgectl: tune: %s\n", err);
		rc = 2;
		goto out;
	}
	if (allowed_cpus(s, &t, &allowed, err, sizeof(err)) < 0) {
		fprintf(stderr, "edgectl: tune: %s\n", err);
		goto out;
	}
	if (cpus_arg) {
		cpu_set_t outside;

		CPU_XOR(&outside, &cpus, &allowed);
		CPU_AND(&outside, &outside, &cpus);
		if (CPU_COUNT(&outside)) {
			char l[256], al[256];

			aff_format_list(&outside, l, sizeof(l));
			aff_format_list(&allowed, al, sizeof(al));
			fprintf(stderr, "edgectl: tune: --cpus '%s': CPUs %s are outside the target's cpuset (%s)\n", cpus_arg, l, al);
			rc = 2;
			goto out;
		}
	}

	/*
	 * profile: through the collectors (BPF where it loads, else procfs) on
	 * the live machine; the controller's procfs sampler on a fixture root or
	 * when the collectors cannot open (the reason is printed).
	 */
	if (!cg_sys_root(s)[0]) {
		struct coll_opts co = { 0 };
		char cgpath[CG_NAME_MAX + 2];

		if (t.by_cgroup) {
			snprintf(cgpath, sizeof(cgpath), "/%s", t.cgroup);
			co.kind = SNAP_TARGET_CGROUP;
			co.cgroup = cgpath;
		} else {
			co.kind = SNAP_TARGET_PID;
			co.pid = t.pid;
		}
		if (coll_new(&co, &coll, err, sizeof(err)) < 0) {
			fprintf(stderr, "edgectl: tune: collectors unavailable (%s); using procfs sampling\n", err);
			coll = NULL;
		}
	}
	cs = csample_new(cg_sys_root(s), err, sizeof(err));
	hist = calloc(MAX_SAMPLES, sizeof(*hist));
	if (!cs || !hist) {
		fprintf(stderr, "edgectl: tune: %s\n", cs ? "out of memory" : err);
		goto out;
	}
	{
		double step = dur / 20 < 0.5 ? dur / 20 : 0.5;
		int nsteps = (int)ceil(dur / step);

		if (step < 0.05)
			step = 0.05;
		for (int i = 0; i <= nsteps && nh < MAX_SAMPLES; i++) {
			struct snap *sn = snap_new();

			if (!sn) {
				fprintf(stderr, "edgectl: tune: out of memory\n");
				goto out;
			}
			free(pids);
			pids = NULL;
			if (target_pids(s, &t, &pids, &npids, err, sizeof(err)) < 0) {
				snap_free(sn);
				fprintf(stderr, "edgectl: tune: %s\n", err);
				goto out;
			}
			if (coll) {
				/* the collectors took their baseline at coll_new: skip tick 0 like csample */
				ret = i == 0 ? 0 : coll_tick(coll, sn) == 0 ? 1 : -EIO;
				if (ret < 0)
					snprintf(err, sizeof(err), "collectors: tick failed");
			} else {
				ret = csample_tick(cs, pids, npids, sn, err, sizeof(err));
			}
			if (ret < 0) {
				snap_free(sn);
				fprintf(stderr, "edgectl: tune: %s\n", err);
				goto out;
			}
			if (ret > 0)
				hist[nh++] = sn;
			else
				snap_free(sn);
			if (i < nsteps)
				sleep_ms(step * 1000);
			if (!t.by_cgroup && cg_check_pid(s, t.pid, NULL, 0) < 0) {
				fprintf(stderr, "edgectl: tune: pid %d exited while being profiled\n", (int)t.pid);
				goto out;
			}
		}
	}
	{
		int is_core = !t.by_cgroup && !strcmp(t.comm, "dify-edge");

		ret = pol_tune_plan((const struct snap *const *)hist, nh, &cfg, &allowed, is_core && admin_sock, &plan, err,
				    sizeof(err));
		if (ret < 0) {
			fprintf(stderr, "edgectl: tune: %s\n", err);
			goto out;
		}
	}
	if (cpus_arg) {
		plan.ncpus = CPU_COUNT(&cpus);
		snprintf(plan.cpus, sizeof(plan.cpus), "%s", cpus_arg);
		aff_format_list(&cpus, plan.cpus, sizeof(plan.cpus));
		snprintf(plan.reason_cpus, sizeof(plan.reason_cpus), "given with --cpus");
	} else {
		aff_parse_list(plan.cpus, &cpus, NULL, 0);
	}
	if (quota_arg) {
		plan.quota_us = quota_override;
		plan.quota_pct = (double)quota_override * 100.0 / (double)plan.period_us;
		snprintf(plan.reason_quota, sizeof(plan.reason_quota), "given with --quota (measured p95 %.1f%%)",
			 plan.usage_p95_pct);
	}
	if (weight_arg) {
		plan.weight = weight_override;
		snprintf(plan.reason_weight, sizeof(plan.reason_weight), "given with --weight");
	}

	if (t.by_cgroup)
		printf("plan for cgroup /%s, profiled %.1f s (%zu samples from %s; cpu controller on cgroup %s)\n", t.cgroup,
		       dur, nh, nh ? snap_source_name((enum snap_source)hist[nh - 1]->threads.st.source) : "-",
		       cg_mode_name(cg_sys_mode(s, CG_CPU)));
	else
		printf("plan for pid %d (%s), profiled %.1f s (%zu samples from %s; cpu controller on cgroup %s)\n",
		       (int)t.pid, t.comm, dur, nh,
		       nh ? snap_source_name((enum snap_source)hist[nh - 1]->threads.st.source) : "-",
		       cg_mode_name(cg_sys_mode(s, CG_CPU)));
	printf("cpus: %s\n  why: %s\n", plan.cpus, plan.reason_cpus);
	printf("cpu.max: %" PRId64 " %" PRId64 "  (%.0f%% of one CPU; systemd CPUQuota=%g%%)\n  why: %s\n", plan.quota_us,
	       plan.period_us, plan.quota_pct, plan.quota_pct, plan.reason_quota);
	printf("weight: %" PRId64 "  (v1 cpu.shares %" PRId64 ")\n  why: %s\n", plan.weight, cg_weight_to_shares(plan.weight),
	       plan.reason_weight);
	if (plan.threads > 0)
		printf("threads: %d\n  why: %s\n", plan.threads, plan.reason_threads);
	else
		printf("threads: n/a  (%s)\n", !t.by_cgroup && !strcmp(t.comm, "dify-edge")
						       ? "dify-edge without --admin-socket"
						       : "the target is not dify-edge");
	if (emit)
		emit_systemd(s, &plan);
	if (!do_apply) {
		rc = 0;
		goto out;
	}
	fflush(stdout);
	ret = apply(s, state_path, &t, &plan, &cpus, admin_sock, err, sizeof(err));
	if (ret < 0) {
		fprintf(stderr, "edgectl: tune: %s; nothing left applied\n", err);
		goto out;
	}
	{
		struct applied a;

		ret = verify(s, &t, &plan, &cpus, &a, err, sizeof(err));
		if (ret < 0) {
			fprintf(stderr, "edgectl: tune: applied but read back differs: %s (state in %s)\n", err, state_path);
			goto out;
		}
		printf("applied: cpu.max %" PRId64 " %" PRId64 ", weight %" PRId64 " on cgroup /%s%s; cpus %s on %d thread%s\n",
		       a.quota, a.period, a.weight, t.by_cgroup ? t.cgroup : "edgectl/tune-", t.by_cgroup ? "" : pid_arg, a.cpus,
		       a.nthreads, a.nthreads == 1 ? "" : "s");
		printf("undo: edgectl revert --state %s\n", state_path);
	}
	rc = 0;
out:
	for (size_t i = 0; i < nh; i++)
		snap_free(hist[i]);
	free(hist);
	free(pids);
	coll_free(coll);
	csample_free(cs);
	cg_sys_free(s);
	return rc;
}
