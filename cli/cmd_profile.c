/*
 * cmd_profile.c: 'edgectl profile': a per-second resource profile of a pid,
 * a cgroup or the whole machine, as a human view or as NDJSON snapshots.
 *
 * It opens the collectors (collectors/collect.h), says which sources are
 * live and why the others are not, then every interval takes one snapshot
 * and prints it: with --json one object per line (docs/snapshot.md), else a
 * screen of text (per-CPU busy heat row, top threads, run-queue latency,
 * migrations, cgroup throttling and memory, PSI, temperatures, frequencies,
 * accelerator loads, events). Ticks are paced on CLOCK_MONOTONIC so that a
 * slow print does not stretch the next tick. SIGINT/SIGTERM end the loop
 * after the current tick.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli/cmds.h"
#include "collectors/collect.h"
#include "collectors/snapshot.h"

static volatile sig_atomic_t stop;

static void on_signal(int sig)
{
	(void)sig;
	stop = 1;
}

static void usage(FILE *f)
{
	fprintf(f,
		"usage: edgectl profile [--pid P | --cgroup PATH] [--interval 1s]\n"
		"                       [--duration D | --count N] [--json] [--top N]\n"
		"                       [--no-bpf] [--no-events | --no-affinity-events |\n"
		"                        --affinity-syscalls]\n"
		"                       [--sysroot DIR] [--btf FILE]\n"
		"\n"
		"A per-second profile of a process (--pid), a cgroup (--cgroup, v1 or v2,\n"
		"a path below the hierarchy root such as /edge/llm) or the whole machine.\n"
		"\n"
		"  --interval T   tick length: 500ms, 1s (default), 2.5s\n"
		"  --duration D   stop after D (rounded to whole ticks)\n"
		"  --count N      stop after N ticks (default: until interrupted)\n"
		"  --json         one snapshot per line as JSON (docs/snapshot.md)\n"
		"  --top N        threads shown in the human view (default 8)\n"
		"  --no-bpf       use procfs instead of the BPF tracers\n"
		"  --no-events    no event tracing (affinity, exec/exit, OOM, cgroup attach)\n"
		"  --no-affinity-events\n"
		"                 the other events but not affinity changes\n"
		"  --affinity-syscalls\n"
		"                 where the kernel has no BPF trampolines (no fexit), catch\n"
		"                 sched_setaffinity calls with a syscall hook (caller and\n"
		"                 result seen, every syscall of the machine slower) instead\n"
		"                 of watching each traced thread's CPU mask at switch-out\n"
		"  --sysroot DIR  read /proc and /sys under DIR (default $EDGE_SYSROOT or /)\n"
		"  --btf FILE     kernel BTF to use (default $EDGE_VMLINUX_BTF or the kernel's)\n"
		"\n"
		"examples:\n"
		"  edgectl profile --pid $(pidof dify-edge) --count 5\n"
		"  edgectl profile --cgroup /edge/llm --interval 500ms --json > prof.ndjson\n"
		"  edgectl profile --duration 10s\n"
		"\n"
		"exit status: 0 done, 1 failure, 2 bad usage or a target that does not exist\n");
}

/* "1s", "500ms", "2.5s", "2" (seconds), "1m" -> ns; 0 on error */
static uint64_t parse_duration(const char *s)
{
	char *end;
	double v;

	errno = 0;
	v = strtod(s, &end);
	if (errno || end == s || !(v > 0) || !isfinite(v))
		return 0;
	if (!strcmp(end, "") || !strcmp(end, "s"))
		v *= 1e9;
	else if (!strcmp(end, "ms"))
		v *= 1e6;
	else if (!strcmp(end, "us"))
		v *= 1e3;
	else if (!strcmp(end, "m"))
		v *= 60e9;
	else
		return 0;
	if (v < 1e6 || v > 86400e9)
		return 0;
	return (uint64_t)v;
}

static void fmt_ns(char *buf, size_t len, uint64_t ns)
{
	if (ns == 0)
		snprintf(buf, len, "-");
	else if (ns < 1000000)
		snprintf(buf, len, "%" PRIu64 "us", ns / 1000);
	else if (ns < 1000000000)
		snprintf(buf, len, "%.1fms", (double)ns / 1e6);
	else
		snprintf(buf, len, "%.2fs", (double)ns / 1e9);
}

static void fmt_bytes(char *buf, size_t len, uint64_t b)
{
	if (b == SNAP_UNLIMITED)
		snprintf(buf, len, "max");
	else if (b >= (1ULL << 30))
		snprintf(buf, len, "%.1fGiB", (double)b / (double)(1ULL << 30));
	else if (b >= (1ULL << 20))
		snprintf(buf, len, "%.1fMiB", (double)b / (double)(1ULL << 20));
	else
		snprintf(buf, len, "%.0fKiB", (double)b / 1024.0);
}

static void print_sources(FILE *f, const struct snap *s)
{
	fprintf(f, "sources:");
	for (uint32_t i = 0; i < s->nsources; i++)
		if (s->sources[i].live)
			fprintf(f, " %s%s%s%s", s->sources[i].name, s->sources[i].why[0] ? " (" : "",
				s->sources[i].why, s->sources[i].why[0] ? ")" : "");
	fprintf(f, "\n");
	for (uint32_t i = 0; i < s->nsources; i++)
		if (!s->sources[i].live)
			fprintf(f, "not live: %s: %s\n", s->sources[i].name, s->sources[i].why);
}

static char heat(double pct)
{
	static const char levels[] = " .:-=+*#%@";
	int i = (int)(pct / 10.0);

	if (i < 0)
		i = 0;
	if (i > 9)
		i = 9;
	return levels[i];
}

static void print_human(FILE *f, const struct snap *s, int top)
{
	char a[32], b[32], c[32];
	const struct snap_cpus *cp = &s->cpus;

	fprintf(f, "\n-- tick %" PRIu64 "  %.2fs  ", s->seq, (double)s->interval_ns / 1e9);
	if (s->target.kind == SNAP_TARGET_PID)
		fprintf(f, "pid %d", s->target.pid);
	else if (s->target.kind == SNAP_TARGET_CGROUP)
		fprintf(f, "cgroup %s", s->target.cgroup);
	else
		fprintf(f, "system");
	fprintf(f, "\n");

	if (cp->st.valid) {
		fprintf(f, "cpu      ");
		for (uint32_t i = 0; i < cp->n; i++)
			fprintf(f, " %4d", cp->cpu[i].cpu);
		fprintf(f, "\nbusy%%    ");
		for (uint32_t i = 0; i < cp->n; i++)
			fprintf(f, " %4.0f", cp->cpu[i].busy_pct);
		fprintf(f, "\ntarget%%  ");
		for (uint32_t i = 0; i < cp->n; i++)
			fprintf(f, " %4.0f", cp->cpu[i].target_pct);
		fprintf(f, "\nheat      [");
		for (uint32_t i = 0; i < cp->n; i++)
			fputc(heat(cp->cpu[i].busy_pct), f);
		fprintf(f, "]  target [");
		for (uint32_t i = 0; i < cp->n; i++)
			fputc(heat(cp->cpu[i].target_pct), f);
		fprintf(f, "]  (%s)\n", snap_source_name(cp->st.source));
		if (cp->st.source == SNAP_SRC_BPF) {
			fmt_ns(a, sizeof(a), s->threads.rq_p50_ns);
			fmt_ns(b, sizeof(b), s->threads.rq_p99_ns);
			fprintf(f, "runq      target p50 %s p99 %s (%" PRIu64 " waits)", a, b, s->threads.rq_count);
			fprintf(f, "  per CPU p99:");
			for (uint32_t i = 0; i < cp->n; i++) {
				fmt_ns(c, sizeof(c), cp->cpu[i].rq_p99_ns);
				fprintf(f, " %s", c);
			}
			fprintf(f, "\nsched     switches %" PRIu64 "  migrations %" PRIu64 " (target %" PRIu64 ")\n",
				cp->switches, cp->migrations, cp->target_migrations);
		}
	} else {
		fprintf(f, "cpu       unavailable: %s\n", cp->st.err);
	}

	const struct snap_threads *th = &s->threads;
	if (th->st.valid && th->n) {
		fprintf(f, "threads   top %d of %u%s\n", top < (int)th->n ? top : (int)th->n, th->n + th->dropped,
			th->st.source == SNAP_SRC_PROCFS ? " (procfs: no run-queue latency)" : "");
		fprintf(f, "  %7s %7s %-16s %6s %6s %6s %4s %8s %8s %4s\n", "TID", "PID", "COMM", "CPU%",
			"VOL", "INVOL", "MIG", "RQ-P50", "RQ-P99", "CPU");
		for (uint32_t i = 0; i < th->n && (int)i < top; i++) {
			const struct snap_thread *t = &th->t[i];
			fmt_ns(a, sizeof(a), t->rq_p50_ns);
			fmt_ns(b, sizeof(b), t->rq_p99_ns);
			fprintf(f, "  %7d %7d %-16s %6.1f %6" PRIu64 " %6" PRIu64 " %4" PRIu64 " %8s %8s %4d\n",
				t->tid, t->pid, t->comm, t->cpu_pct, t->vol_switches, t->invol_switches,
				t->migrations, a, b, t->last_cpu);
		}
	} else if (!th->st.valid) {
		fprintf(f, "threads   unavailable: %s\n", th->st.err);
	}

	const struct snap_cgroup *g = &s->cgroup;
	if (g->st.valid) {
		fmt_bytes(a, sizeof(a), g->mem_current_bytes);
		fmt_bytes(b, sizeof(b), g->mem_max_bytes);
		fmt_bytes(c, sizeof(c), g->mem_peak_bytes);
		fprintf(f, "cgroup    %s %s: cpu %.1f%%  quota ", g->version == SNAP_CG_V2 ? "v2" : "v1", g->path, g->cpu_pct);
		if (g->quota_us == SNAP_UNLIMITED)
			fprintf(f, "max");
		else
			fprintf(f, "%" PRIu64 "us", g->quota_us);
		fprintf(f, "/%" PRIu64 "us  weight %" PRIu64 "  throttled %" PRIu64 "x %.1fms  mem %s / %s (peak %s)  oom_kill %" PRIu64 "%s\n",
			g->period_us, g->weight, g->d_nr_throttled, (double)g->d_throttled_ns / 1e6, a, b, c,
			g->mem_events_oom_kill, g->under_oom ? "  UNDER OOM" : "");
		if (g->st.err[0])
			fprintf(f, "          note: %s\n", g->st.err);
		if (g->psi.st.valid)
			fprintf(f, "cg psi    cpu %.2f  mem %.2f  io %.2f (some avg10 %%)\n", g->psi.cpu.some.avg10,
				g->psi.memory.some.avg10, g->psi.io.some.avg10);
	} else if (s->target.kind != SNAP_TARGET_SYSTEM) {
		fprintf(f, "cgroup    unavailable: %s\n", g->st.err);
	}

	const struct snap_psi *p = &s->psi;
	if (p->st.valid)
		fprintf(f, "psi       cpu %.2f/%.2f/%.2f  mem %.2f/%.2f/%.2f  io %.2f/%.2f/%.2f (some avg10/60/300 %%)\n",
			p->cpu.some.avg10, p->cpu.some.avg60, p->cpu.some.avg300,
			p->memory.some.avg10, p->memory.some.avg60, p->memory.some.avg300,
			p->io.some.avg10, p->io.some.avg60, p->io.some.avg300);
	else
		fprintf(f, "psi       unavailable: %s\n", p->st.err);

	const struct snap_thermal *t = &s->thermal;
	if (t->n) {
		fprintf(f, "temps    ");
		for (uint32_t i = 0; i < t->n; i++) {
			if (t->z[i].valid)
				fprintf(f, " %s %.1fC", t->z[i].type, t->z[i].temp_mc / 1000.0);
			else
				fprintf(f, " %s ?", t->z[i].type);
		}
		fprintf(f, "\n");
		if (t->st.err[0])
			fprintf(f, "          note: %s\n", t->st.err);
	} else {
		fprintf(f, "temps     unavailable: %s\n", t->st.err);
	}

	const struct snap_topology *tp = &s->topo;
	if (tp->st.valid) {
		fprintf(f, "freq     ");
		for (uint32_t i = 0; i < tp->nclusters; i++) {
			const struct snap_cluster *cl = &tp->cluster[i];
			fprintf(f, " [cpus 0x%" PRIx64 " cap %u", cl->cpumask[0], cl->capacity);
			if (cl->cur_khz)
				fprintf(f, " %u MHz (%u-%u)", cl->cur_khz / 1000, cl->min_khz / 1000, cl->max_khz / 1000);
			fprintf(f, "]");
		}
		fprintf(f, "  online %u/%u\n", tp->nonline, tp->ncpus);
		if (tp->st.err[0])
			fprintf(f, "          note: %s\n", tp->st.err);
	} else {
		fprintf(f, "freq      unavailable: %s\n", tp->st.err);
	}

	const struct snap_accels *ac = &s->accel;
	if (ac->n) {
		fprintf(f, "accel    ");
		for (uint32_t i = 0; i < ac->n; i++) {
			const struct snap_accel *x = &ac->a[i];
			if (!x->st.valid) {
				fprintf(f, " %s: %s", x->name, x->st.err);
				continue;
			}
			fprintf(f, " %s %.1f%%", x->name, x->load_pct);
			if (x->cur_freq_hz)
				fprintf(f, " @%" PRIu64 "MHz", x->cur_freq_hz / 1000000);
			if (x->kind == SNAP_ACCEL_RKNPU) {
				fprintf(f, " [");
				for (uint32_t k = 0; k < x->ncores; k++)
					fprintf(f, "%s%.0f", k ? " " : "", x->core_pct[k]);
				fprintf(f, "]");
			}
		}
		fprintf(f, "\n");
	}

	const struct snap_events *ev = &s->events;
	for (uint32_t i = 0; i < ev->n; i++) {
		const struct snap_event *e = &ev->ev[i];
		fprintf(f, "event     %s pid %d %s", snap_event_name(e->type), e->pid, e->comm);
		switch (e->type) {
		case SNAP_EV_AFFINITY:
			if (e->at_switch)
				fprintf(f, " mask 0x%" PRIx64 " -> 0x%" PRIx64 " (seen at switch-out)",
					e->prev_cpumask[0], e->cpumask[0]);
			else
				fprintf(f, " mask 0x%" PRIx64 " by %d result %d", e->cpumask[0], e->caller, e->result);
			break;
		case SNAP_EV_EXEC:
			fprintf(f, " %s", e->path);
			break;
		case SNAP_EV_EXIT:
			fprintf(f, " code %d", e->result);
			break;
		case SNAP_EV_OOM:
			fprintf(f, " total_vm %" PRIu64 "kB anon_rss %" PRIu64 "kB", e->total_vm_kb, e->anon_rss_kb);
			break;
		case SNAP_EV_CGROUP_ATTACH:
			fprintf(f, " -> %s", e->path);
			break;
		default:
			break;
		}
		fprintf(f, "\n");
	}
	if (ev->dropped)
		fprintf(f, "event     %u more not shown\n", ev->dropped);
}

static void sleep_until(uint64_t deadline_ns)
{
	struct timespec ts = {
		.tv_sec = (time_t)(deadline_ns / 1000000000ULL),
		.tv_nsec = (long)(deadline_ns % 1000000000ULL),
	};

	while (!stop && clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR)
		;
}

int cmd_profile(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "pid", required_argument, NULL, 'p' },
		{ "cgroup", required_argument, NULL, 'c' },
		{ "interval", required_argument, NULL, 'i' },
		{ "duration", required_argument, NULL, 'd' },
		{ "count", required_argument, NULL, 'n' },
		{ "json", no_argument, NULL, 'j' },
		{ "top", required_argument, NULL, 't' },
		{ "no-bpf", no_argument, NULL, 'B' },
		{ "no-events", no_argument, NULL, 'E' },
		{ "no-affinity-events", no_argument, NULL, 'A' },
		{ "affinity-syscalls", no_argument, NULL, 'S' },
		{ "sysroot", required_argument, NULL, 'r' },
		{ "btf", required_argument, NULL, 'b' },
		{ "help", no_argument, NULL, 'h' },
		{ 0, 0, 0, 0 },
	};
	struct coll_opts o = { .kind = SNAP_TARGET_SYSTEM };
	uint64_t interval = 1000000000ULL, duration = 0;
	long count = -1, top = 8;
	bool json = false;
	struct coll *c = NULL;
	struct snap *s = NULL;
	char err[512];
	int opt, ret = 0;
	long pid;

	optind = 1;
	while ((opt = getopt_long(argc, argv, "p:c:i:d:n:jt:h", longopts, NULL)) != -1) {
		char *end;
		switch (opt) {
		case 'p':
			errno = 0;
			pid = strtol(optarg, &end, 10);
			if (errno || *end || pid <= 0 || pid > INT32_MAX) {
				fprintf(stderr, "edgectl: pid %s: not a valid pid\n", optarg);
				return 2;
			}
			if (o.kind == SNAP_TARGET_CGROUP) {
				fprintf(stderr, "edgectl: profile: --pid and --cgroup exclude each other\n");
				return 2;
			}
			o.kind = SNAP_TARGET_PID;
			o.pid = (int32_t)pid;
			break;
		case 'c':
			if (o.kind == SNAP_TARGET_PID) {
				fprintf(stderr, "edgectl: profile: --pid and --cgroup exclude each other\n");
				return 2;
			}
			o.kind = SNAP_TARGET_CGROUP;
			o.cgroup = optarg;
			break;
		case 'i':
			interval = parse_duration(optarg);
			if (!interval) {
				fprintf(stderr, "edgectl: interval %s: not a duration between 1ms and 1 day (e.g. 500ms, 1s)\n", optarg);
				return 2;
			}
			break;
		case 'd':
			duration = parse_duration(optarg);
			if (!duration) {
				fprintf(stderr, "edgectl: duration %s: not a duration (e.g. 10s, 2m)\n", optarg);
				return 2;
			}
			break;
		case 'n':
			errno = 0;
			count = strtol(optarg, &end, 10);
			if (errno || *end || count <= 0) {
				fprintf(stderr, "edgectl: count %s: not a positive number\n", optarg);
				return 2;
			}
			break;
		case 'j':
			json = true;
			break;
		case 't':
			errno = 0;
			top = strtol(optarg, &end, 10);
			if (errno || *end || top < 0 || top > SNAP_MAX_THREADS) {
				fprintf(stderr, "edgectl: top %s: not a number 0..%d\n", optarg, SNAP_MAX_THREADS);
				return 2;
			}
			break;
		case 'B':
			o.no_bpf = true;
			break;
		case 'E':
			o.no_events = true;
			break;
		case 'S':
			o.affinity_syscalls = true;
			break;
		case 'A':
			o.no_affinity_events = true;
			break;
		case 'r':
			o.sysroot = optarg;
			break;
		case 'b':
			o.btf_path = optarg;
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "edgectl: profile: unexpected argument '%s'\n", argv[optind]);
		return 2;
	}
	if (duration && count > 0) {
		fprintf(stderr, "edgectl: profile: --duration and --count exclude each other\n");
		return 2;
	}
	if (duration)
		count = (long)((duration + interval / 2) / interval) > 0 ? (long)((duration + interval / 2) / interval) : 1;

	ret = coll_new(&o, &c, err, sizeof(err));
	if (ret) {
		fprintf(stderr, "edgectl: %s\n", err);
		return ret == -ENOENT || ret == -EINVAL ? 2 : 1;
	}
	s = snap_new();
	if (!s) {
		fprintf(stderr, "edgectl: profile: out of memory\n");
		ret = 1;
		goto out;
	}
	signal(SIGINT, on_signal);
	signal(SIGTERM, on_signal);
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	uint64_t next = (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
	bool sources_shown = false;
	for (long i = 0; (count < 0 || i < count) && !stop; i++) {
		next += interval;
		sleep_until(next);
		if (stop && i > 0)
			break;
		ret = coll_tick(c, s);
		if (ret) {
			fprintf(stderr, "edgectl: profile: tick failed: %s\n", strerror(-ret));
			ret = 1;
			goto out;
		}
		if (json) {
			if (snap_write_json(s, stdout)) {
				ret = 1;
				goto out;
			}
		} else {
			if (!sources_shown) {
				print_sources(stdout, s);
				sources_shown = true;
			}
			print_human(stdout, s, (int)top);
		}
		fflush(stdout);
	}
	if (json && !sources_shown) {
		/* the live/why list goes to stderr once, so a script's stdout stays NDJSON */
		for (uint32_t i = 0; i < s->nsources; i++)
			if (!s->sources[i].live)
				fprintf(stderr, "edgectl: profile: source %s not live: %s\n", s->sources[i].name,
					s->sources[i].why);
	}
	ret = 0;
out:
	snap_free(s);
	coll_free(c);
	return ret;
}
