/*
 * cgroup.c: the v1/v2 naming layer over libcgroup 2.0.2 (see cgroup.h).
 *
 * DESIGN
 * cg_sys_open() parses the mount table under the sysroot once and keeps, per
 * logical controller, its mode and the directory of its hierarchy root. A v1
 * mount serves a controller when its super options name it ("rw,cpu,cpuacct");
 * a v2 mount serves it when its cgroup.controllers lists it (cpuacct's
 * accounting lives in the cpu controller on v2). v1 wins where both exist,
 * as the kernel does: a controller bound to a v1 hierarchy is absent from v2.
 *
 * Writes: on the live machine (empty sysroot) with a v1 controller we use
 * libcgroup (cgroup_new_cgroup + cgroup_add_controller +
 * cgroup_add_value_string + cgroup_modify_cgroup; cgroup_create_cgroup;
 * cgroup_delete_cgroup). libcgroup only knows the real machine's
 * /proc/mounts and 2.0.2 does not translate v1 names to v2, so everywhere
 * else (v2, fixture trees under EDGE_SYSROOT) the same functions open the
 * file under the root and write it. Membership changes always write
 * cgroup.procs directly: that moves every thread of the process at once.
 */
#include "controller/cgroup.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <libcgroup.h>

/*
 * Paths here are built with snprintf into CG_PATH_MAX buffers; a path that
 * long would be truncated and then fail at open() with a message naming it,
 * so gcc's truncation guesses (about sysroot + mount + name sums) are noise.
 */
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wformat-truncation"
#endif

struct cg_sys {
	char root[CG_PATH_MAX];
	enum cg_mode mode[CG_NCTRL];
	char mount[CG_NCTRL][CG_PATH_MAX]; /* root + mount point */
	char mnt_rel[CG_NCTRL][CG_PATH_MAX]; /* mount point as the machine sees it */
	int libcg; /* libcgroup initialised and usable for v1 */
};

static const char *const ctrl_names[CG_NCTRL] = {
	[CG_CPU] = "cpu",
	[CG_CPUACCT] = "cpuacct",
	[CG_CPUSET] = "cpuset",
	[CG_MEMORY] = "memory",
};

/* v2 has no cpuacct controller: its accounting is in "cpu". */
static const char *const ctrl_v2_names[CG_NCTRL] = {
	[CG_CPU] = "cpu",
	[CG_CPUACCT] = "cpu",
	[CG_CPUSET] = "cpuset",
	[CG_MEMORY] = "memory",
};

struct knob_map {
	int n;
	struct cg_file v1[2];
	struct cg_file v2[2];
};

/* v1 cpu.max: period first, so that restoring in order never trips quota/period checks. */
static const struct knob_map knob_maps[CG_NKNOB] = {
	[CG_KNOB_CPU_MAX] = { .n = 2,
		.v1 = { { .ctrl = CG_CPU, .file = "cpu.cfs_period_us" }, { .ctrl = CG_CPU, .file = "cpu.cfs_quota_us" } },
		.v2 = { { .ctrl = CG_CPU, .file = "cpu.max" } } },
	[CG_KNOB_WEIGHT] = { .n = 1,
		.v1 = { { .ctrl = CG_CPU, .file = "cpu.shares" } },
		.v2 = { { .ctrl = CG_CPU, .file = "cpu.weight" } } },
	[CG_KNOB_CPUS] = { .n = 1,
		.v1 = { { .ctrl = CG_CPUSET, .file = "cpuset.cpus" } },
		.v2 = { { .ctrl = CG_CPUSET, .file = "cpuset.cpus" } } },
	[CG_KNOB_MEMS] = { .n = 1,
		.v1 = { { .ctrl = CG_CPUSET, .file = "cpuset.mems" } },
		.v2 = { { .ctrl = CG_CPUSET, .file = "cpuset.mems" } } },
	[CG_KNOB_MEM_MAX] = { .n = 1,
		.v1 = { { .ctrl = CG_MEMORY, .file = "memory.limit_in_bytes" } },
		.v2 = { { .ctrl = CG_MEMORY, .file = "memory.max" } } },
	[CG_KNOB_MEM_HIGH] = { .n = 1,
		.v1 = { { .ctrl = CG_MEMORY, .file = "memory.soft_limit_in_bytes" } },
		.v2 = { { .ctrl = CG_MEMORY, .file = "memory.high" } } },
	[CG_KNOB_IDLE] = { .n = 1,
		.v1 = { { .ctrl = CG_CPU, .file = "cpu.idle" } },
		.v2 = { { .ctrl = CG_CPU, .file = "cpu.idle" } } },
};

static const char *const knob_names[CG_NKNOB] = {
	[CG_KNOB_CPU_MAX] = "cpu.max",
	[CG_KNOB_WEIGHT] = "weight",
	[CG_KNOB_CPUS] = "cpus",
	[CG_KNOB_MEMS] = "mems",
	[CG_KNOB_MEM_MAX] = "memory.max",
	[CG_KNOB_MEM_HIGH] = "memory.high",
	[CG_KNOB_IDLE] = "idle",
};

static void seterr(char *err, size_t errlen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void seterr(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	if (!err || !errlen)
		return;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
}

const char *cg_ctrl_name(enum cg_ctrl c)
{
	return (unsigned)c < CG_NCTRL ? ctrl_names[c] : "?";
}

int cg_ctrl_from_name(const char *name)
{
	for (int i = 0; i < CG_NCTRL; i++)
		if (!strcmp(name, ctrl_names[i]))
			return i;
	return -EINVAL;
}

const char *cg_mode_name(enum cg_mode m)
{
	return m == CG_V1 ? "v1" : m == CG_V2 ? "v2" : "none";
}

const char *cg_knob_name(enum cg_knob k)
{
	return (unsigned)k < CG_NKNOB ? knob_names[k] : "?";
}

/* Undo mountinfo's octal escapes (\040 for space) in place. */
static void unescape(char *s)
{
	char *o = s;

	while (*s) {
		if (s[0] == '\\' && s[1] >= '0' && s[1] <= '7' && s[2] >= '0' && s[2] <= '7' &&
		    s[3] >= '0' && s[3] <= '7') {
			*o++ = (char)((s[1] - '0') * 64 + (s[2] - '0') * 8 + (s[3] - '0'));
			s += 4;
		} else {
			*o++ = *s++;
		}
	}
	*o = 0;
}

static int has_opt(const char *opts, const char *want)
{
	size_t wl = strlen(want);
	const char *p = opts;

	while (p && *p) {
		const char *e = strchr(p, ',');
		size_t l = e ? (size_t)(e - p) : strlen(p);

		if (l == wl && !strncmp(p, want, wl))
			return 1;
		p = e ? e + 1 : NULL;
	}
	return 0;
}

static int read_small(const char *path, char *buf, size_t len)
{
	int fd, err = 0;
	size_t got = 0;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	while (got + 1 < len) {
		ssize_t r = read(fd, buf + got, len - 1 - got);

		if (r < 0) {
			if (errno == EINTR)
				continue;
			err = -errno;
			goto out;
		}
		if (r == 0)
			break;
		got += (size_t)r;
	}
	buf[got] = 0;
	err = (int)got;
out:
	close(fd);
	return err;
}

static void add_v1(struct cg_sys *s, const char *mnt, const char *superopts)
{
	for (int c = 0; c < CG_NCTRL; c++) {
		if (s->mode[c] == CG_V1 || !has_opt(superopts, ctrl_names[c]))
			continue;
		s->mode[c] = CG_V1;
		snprintf(s->mnt_rel[c], sizeof(s->mnt_rel[c]), "%s", mnt);
		snprintf(s->mount[c], sizeof(s->mount[c]), "%s%s", s->root, strcmp(mnt, "/") ? mnt : "");
	}
}

static void add_v2(struct cg_sys *s, const char *mnt)
{
	char path[CG_PATH_MAX + 32], ctrls[512];

	snprintf(path, sizeof(path), "%s%s/cgroup.controllers", s->root, strcmp(mnt, "/") ? mnt : "");
	if (read_small(path, ctrls, sizeof(ctrls)) < 0)
		return;
	for (char *p = ctrls; *p; p++)
		if (isspace((unsigned char)*p))
			*p = ',';
	for (int c = 0; c < CG_NCTRL; c++) {
		if (s->mode[c] != CG_NONE || !has_opt(ctrls, ctrl_v2_names[c]))
			continue;
		s->mode[c] = CG_V2;
		snprintf(s->mnt_rel[c], sizeof(s->mnt_rel[c]), "%s", mnt);
		snprintf(s->mount[c], sizeof(s->mount[c]), "%s%s", s->root, strcmp(mnt, "/") ? mnt : "");
	}
}

/* Parse mountinfo ("... mountpoint opts [optional...] - fstype source superopts") or /proc/mounts. */
static int parse_mounts(struct cg_sys *s, char *err, size_t errlen)
{
	char path[CG_PATH_MAX + 32], line[4096];
	char v2mnt[CG_NCTRL * 2][CG_PATH_MAX];
	int nv2 = 0, mountinfo = 1, ret = 0;
	FILE *f;

	snprintf(path, sizeof(path), "%s/proc/self/mountinfo", s->root);
	f = fopen(path, "re");
	if (!f) {
		mountinfo = 0;
		snprintf(path, sizeof(path), "%s/proc/mounts", s->root);
		f = fopen(path, "re");
	}
	if (!f) {
		ret = -errno;
		seterr(err, errlen, "%s: %s", path, strerror(errno));
		goto out;
	}
	while (fgets(line, sizeof(line), f)) {
		char *fld[32], *sp = NULL, *tok;
		int n = 0;
		const char *mnt, *fstype, *superopts;

		for (tok = strtok_r(line, " \n", &sp); tok && n < 32; tok = strtok_r(NULL, " \n", &sp))
			fld[n++] = tok;
		if (mountinfo) {
			int dash = -1;

			for (int i = 6; i < n; i++)
				if (!strcmp(fld[i], "-")) {
					dash = i;
					break;
				}
			if (dash < 0 || dash + 3 >= n)
				continue;
			mnt = fld[4];
			fstype = fld[dash + 1];
			superopts = fld[dash + 3];
		} else {
			if (n < 4)
				continue;
			mnt = fld[1];
			fstype = fld[2];
			superopts = fld[3];
		}
		unescape((char *)mnt);
		if (!strcmp(fstype, "cgroup"))
			add_v1(s, mnt, superopts);
		else if (!strcmp(fstype, "cgroup2") && nv2 < CG_NCTRL * 2)
			snprintf(v2mnt[nv2++], CG_PATH_MAX, "%s", mnt);
	}
	fclose(f);
	for (int i = 0; i < nv2; i++)
		add_v2(s, v2mnt[i]);
out:
	return ret;
}

static pthread_once_t libcg_once = PTHREAD_ONCE_INIT;
static int libcg_status = -1;

static void libcg_init(void)
{
	libcg_status = cgroup_init();
}

struct cg_sys *cg_sys_open(const char *root, char *err, size_t errlen)
{
	struct cg_sys *s = calloc(1, sizeof(*s));
	int any = 0;

	if (!s) {
		seterr(err, errlen, "out of memory");
		return NULL;
	}
	if (root && *root) {
		size_t l;

		snprintf(s->root, sizeof(s->root), "%s", root);
		l = strlen(s->root);
		while (l > 1 && s->root[l - 1] == '/')
			s->root[--l] = 0;
		if (!strcmp(s->root, "/"))
			s->root[0] = 0;
	}
	if (parse_mounts(s, err, errlen) < 0)
		goto fail;
	for (int c = 0; c < CG_NCTRL; c++)
		any |= s->mode[c] != CG_NONE;
	if (!any) {
		seterr(err, errlen, "%s/proc/self/mountinfo: no cgroup cpu, cpuset or memory controller mounted",
		       s->root);
		goto fail;
	}
	if (!s->root[0]) {
		int v1 = 0;

		for (int c = 0; c < CG_NCTRL; c++)
			v1 |= s->mode[c] == CG_V1;
		if (v1) {
			pthread_once(&libcg_once, libcg_init);
			s->libcg = libcg_status == 0;
		}
	}
	return s;
fail:
	free(s);
	return NULL;
}

void cg_sys_free(struct cg_sys *s)
{
	free(s);
}

const char *cg_sys_root(const struct cg_sys *s)
{
	return s->root;
}

enum cg_mode cg_sys_mode(const struct cg_sys *s, enum cg_ctrl c)
{
	return (unsigned)c < CG_NCTRL ? s->mode[c] : CG_NONE;
}

const char *cg_sys_mount(const struct cg_sys *s, enum cg_ctrl c)
{
	return (unsigned)c < CG_NCTRL && s->mode[c] != CG_NONE ? s->mount[c] : NULL;
}

int cg_sys_uses_libcgroup(const struct cg_sys *s, enum cg_ctrl c)
{
	return s->libcg && cg_sys_mode(s, c) == CG_V1;
}

/* Lexically normalize "a//b/./c/../d" into "a/b/d"; -1 when '..' leaves the top. */
static int lex_normalize(const char *in, char *out, size_t len)
{
	char tmp[CG_PATH_MAX];
	char *comp[256], *sp = NULL, *t;
	int n = 0;
	size_t o = 0;

	if (strlen(in) >= sizeof(tmp))
		return -1;
	snprintf(tmp, sizeof(tmp), "%s", in);
	for (t = strtok_r(tmp, "/", &sp); t; t = strtok_r(NULL, "/", &sp)) {
		if (!strcmp(t, "."))
			continue;
		if (!strcmp(t, "..")) {
			if (n == 0)
				return -1;
			n--;
			continue;
		}
		if (n == 256)
			return -1;
		comp[n++] = t;
	}
	if (len)
		out[0] = 0;
	for (int i = 0; i < n; i++) {
		int w = snprintf(out + o, len - o, "%s%s", i ? "/" : "", comp[i]);

		if (w < 0 || (size_t)w >= len - o)
			return -1;
		o += (size_t)w;
	}
	return 0;
}

int cg_normalize(const struct cg_sys *s, const char *in, char *name, size_t len, char *err, size_t errlen)
{
	char full[CG_PATH_MAX];
	int ret = 0;

	if (!in || !*in) {
		ret = -EINVAL;
		seterr(err, errlen, "cgroup: empty name");
		goto out;
	}
	if (lex_normalize(in, full, sizeof(full)) < 0) {
		ret = -EINVAL;
		seterr(err, errlen, "cgroup %s: outside the cgroup hierarchy", in);
		goto out;
	}
	/* A filesystem path under the sysroot's cgroup mount points: strip the mount. */
	for (int c = 0; c < CG_NCTRL; c++) {
		char mnt[CG_PATH_MAX];
		size_t ml;

		if (s->mode[c] == CG_NONE)
			continue;
		if (lex_normalize(s->mount[c], mnt, sizeof(mnt)) < 0)
			continue;
		ml = strlen(mnt);
		if (!strncmp(full, mnt, ml) && (full[ml] == 0 || full[ml] == '/')) {
			snprintf(name, len, "%s", full[ml] ? full + ml + 1 : "");
			goto out;
		}
	}
	/*
	 * A path that starts under the sysroot's cgroup tree (or a mount) but
	 * does not end under a mounted controller left the hierarchy: "..",
	 * or a controller we do not use.
	 */
	{
		char base[CG_PATH_MAX];
		int under = 0;

		snprintf(base, sizeof(base), "%s/sys/fs/cgroup", s->root);
		under = !strncmp(in, base, strlen(base)) || (s->root[0] && !strncmp(in, s->root, strlen(s->root)) &&
							       (in[strlen(s->root)] == '/' || !in[strlen(s->root)]));
		for (int c = 0; c < CG_NCTRL && !under; c++)
			under = s->mode[c] != CG_NONE && !strncmp(in, s->mount[c], strlen(s->mount[c]));
		if (under) {
			ret = -EINVAL;
			seterr(err, errlen, "cgroup %s: outside the cgroup hierarchy (not under a cpu, cpuset or memory mount)",
			       in);
			goto out;
		}
	}
	if (strlen(full) >= len) {
		ret = -ENAMETOOLONG;
		seterr(err, errlen, "cgroup %s: name too long", in);
		goto out;
	}
	snprintf(name, len, "%s", full);
out:
	return ret;
}

int cg_dir(const struct cg_sys *s, enum cg_ctrl c, const char *name, char *buf, size_t len)
{
	int w;

	if (cg_sys_mode(s, c) == CG_NONE)
		return -ENODEV;
	w = snprintf(buf, len, "%s%s%s", s->mount[c], name && *name ? "/" : "", name ? name : "");
	return w < 0 || (size_t)w >= len ? -ENAMETOOLONG : 0;
}

int cg_exists(const struct cg_sys *s, enum cg_ctrl c, const char *name)
{
	char d[CG_PATH_MAX];
	struct stat st;

	if (cg_dir(s, c, name, d, sizeof(d)) < 0)
		return 0;
	return stat(d, &st) == 0 && S_ISDIR(st.st_mode);
}

int cg_knob_files(const struct cg_sys *s, enum cg_knob k, struct cg_file out[2])
{
	const struct knob_map *m;
	enum cg_mode mode;

	if ((unsigned)k >= CG_NKNOB)
		return 0;
	m = &knob_maps[k];
	mode = cg_sys_mode(s, m->v1[0].ctrl);
	if (mode == CG_NONE)
		return 0;
	for (int i = 0; i < m->n; i++)
		out[i] = mode == CG_V1 ? m->v1[i] : m->v2[i];
	/* v2 cpu.max is a single file */
	return mode == CG_V2 && k == CG_KNOB_CPU_MAX ? 1 : m->n;
}

static int file_path(const struct cg_sys *s, enum cg_ctrl c, const char *name, const char *file,
		     char *buf, size_t len, char *err, size_t errlen)
{
	char d[CG_PATH_MAX];
	int w;

	if (cg_sys_mode(s, c) == CG_NONE) {
		seterr(err, errlen, "cgroup controller %s: not mounted", cg_ctrl_name(c));
		return -ENODEV;
	}
	if (cg_dir(s, c, name, d, sizeof(d)) < 0) {
		seterr(err, errlen, "cgroup %s: path too long", name);
		return -ENAMETOOLONG;
	}
	w = snprintf(buf, len, "%s/%s", d, file);
	if (w < 0 || (size_t)w >= len) {
		seterr(err, errlen, "cgroup %s: path too long", name);
		return -ENAMETOOLONG;
	}
	return 0;
}

int cg_read(const struct cg_sys *s, enum cg_ctrl c, const char *name, const char *file, char *buf,
	    size_t len, char *err, size_t errlen)
{
	char p[CG_PATH_MAX + 64];
	int ret;

	ret = file_path(s, c, name, file, p, sizeof(p), err, errlen);
	if (ret < 0)
		return ret;
	ret = read_small(p, buf, len);
	if (ret < 0) {
		if (ret == -ENOENT && !cg_exists(s, c, name))
			seterr(err, errlen, "cgroup /%s: no such cgroup in the %s hierarchy", name, cg_ctrl_name(c));
		else
			seterr(err, errlen, "%s: %s", p, strerror(-ret));
	}
	return ret;
}

static int write_direct(const char *p, const char *value)
{
	size_t l = strlen(value);
	ssize_t w;
	int fd, ret = 0;

	fd = open(p, O_WRONLY | O_TRUNC | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	do
		w = write(fd, value, l);
	while (w < 0 && errno == EINTR);
	if (w < 0)
		ret = -errno;
	else if ((size_t)w != l)
		ret = -EIO;
	if (close(fd) < 0 && !ret)
		ret = -errno;
	return ret;
}

static int write_libcg(const struct cg_sys *s, enum cg_ctrl c, const char *name, const char *file,
		       const char *value)
{
	struct cgroup *cg;
	struct cgroup_controller *ctl;
	int ret = 0, r;

	cg = cgroup_new_cgroup(name);
	if (!cg)
		return -ENOMEM;
	ctl = cgroup_add_controller(cg, cg_ctrl_name(c));
	if (!ctl) {
		ret = -ENOMEM;
		goto out;
	}
	r = cgroup_add_value_string(ctl, file, value);
	if (r) {
		ret = -EINVAL;
		goto out;
	}
	r = cgroup_modify_cgroup(cg);
	if (r) {
		int e = cgroup_get_last_errno();

		ret = e > 0 ? -e : -EIO;
	}
out:
	cgroup_free(&cg);
	(void)s;
	return ret;
}

int cg_write(const struct cg_sys *s, enum cg_ctrl c, const char *name, const char *file,
	     const char *value, char *err, size_t errlen)
{
	char p[CG_PATH_MAX + 64];
	int ret;

	ret = file_path(s, c, name, file, p, sizeof(p), err, errlen);
	if (ret < 0)
		goto out;
	if (!cg_exists(s, c, name)) {
		ret = -ENOENT;
		seterr(err, errlen, "cgroup /%s: no such cgroup in the %s hierarchy", name, cg_ctrl_name(c));
		goto out;
	}
	/* cgroup.procs and tasks are membership, not values: always direct (see top). */
	if (cg_sys_uses_libcgroup(s, c) && strcmp(file, "cgroup.procs") && strcmp(file, "tasks"))
		ret = write_libcg(s, c, name, file, value);
	else
		ret = write_direct(p, value);
	if (ret < 0) {
		char v[64];
		size_t l;

		snprintf(v, sizeof(v), "%s", value);
		l = strlen(v);
		while (l && v[l - 1] == '\n')
			v[--l] = 0;
		seterr(err, errlen, "%s: writing '%s': %s", p, v, strerror(-ret));
	}
out:
	return ret;
}

static void chomp(char *b)
{
	size_t l = strlen(b);

	while (l && isspace((unsigned char)b[l - 1]))
		b[--l] = 0;
}

static int parse_i64(const char *s, int64_t *v)
{
	char *end;
	long long x;

	errno = 0;
	x = strtoll(s, &end, 10);
	if (errno || end == s)
		return -EINVAL;
	while (isspace((unsigned char)*end))
		end++;
	if (*end)
		return -EINVAL;
	*v = x;
	return 0;
}

int cg_check_cpu_max(int64_t quota_us, int64_t period_us, char *err, size_t errlen)
{
	if (period_us < CG_PERIOD_MIN_US || period_us > CG_PERIOD_MAX_US) {
		seterr(err, errlen, "cpu period %" PRId64 " us: outside the kernel's range %d..%d us", period_us,
		       CG_PERIOD_MIN_US, CG_PERIOD_MAX_US);
		return -EINVAL;
	}
	if (quota_us != -1 && quota_us < CG_QUOTA_MIN_US) {
		seterr(err, errlen, "cpu quota %" PRId64 " us: below the kernel's minimum of %d us (1 ms)", quota_us,
		       CG_QUOTA_MIN_US);
		return -EINVAL;
	}
	return 0;
}

int cg_get_cpu_max(const struct cg_sys *s, const char *name, int64_t *quota_us, int64_t *period_us,
		   char *err, size_t errlen)
{
	char b[128], *sp;
	int ret;

	if (cg_sys_mode(s, CG_CPU) == CG_V2) {
		char *q, *p;

		ret = cg_read(s, CG_CPU, name, "cpu.max", b, sizeof(b), err, errlen);
		if (ret < 0)
			return ret;
		q = strtok_r(b, " \n", &sp);
		p = strtok_r(NULL, " \n", &sp);
		if (!q || !p || parse_i64(p, period_us) < 0 ||
		    (strcmp(q, "max") ? parse_i64(q, quota_us) < 0 : (*quota_us = -1, 0))) {
			seterr(err, errlen, "cgroup /%s: cpu.max: malformed", name);
			return -EINVAL;
		}
		return 0;
	}
	ret = cg_read(s, CG_CPU, name, "cpu.cfs_quota_us", b, sizeof(b), err, errlen);
	if (ret < 0)
		return ret;
	if (parse_i64(b, quota_us) < 0) {
		seterr(err, errlen, "cgroup /%s: cpu.cfs_quota_us: malformed", name);
		return -EINVAL;
	}
	if (*quota_us < 0)
		*quota_us = -1;
	ret = cg_read(s, CG_CPU, name, "cpu.cfs_period_us", b, sizeof(b), err, errlen);
	if (ret < 0)
		return ret;
	if (parse_i64(b, period_us) < 0) {
		seterr(err, errlen, "cgroup /%s: cpu.cfs_period_us: malformed", name);
		return -EINVAL;
	}
	return 0;
}

int cg_set_cpu_max(const struct cg_sys *s, const char *name, int64_t quota_us, int64_t period_us,
		   char *err, size_t errlen)
{
	char b[64];
	int ret;

	ret = cg_check_cpu_max(quota_us, period_us, err, errlen);
	if (ret < 0)
		return ret;
	if (cg_sys_mode(s, CG_CPU) == CG_V2) {
		if (quota_us < 0)
			snprintf(b, sizeof(b), "max %" PRId64, period_us);
		else
			snprintf(b, sizeof(b), "%" PRId64 " %" PRId64, quota_us, period_us);
		return cg_write(s, CG_CPU, name, "cpu.max", b, err, errlen);
	}
	snprintf(b, sizeof(b), "%" PRId64, period_us);
	ret = cg_write(s, CG_CPU, name, "cpu.cfs_period_us", b, err, errlen);
	if (ret < 0)
		return ret;
	snprintf(b, sizeof(b), "%" PRId64, quota_us < 0 ? (int64_t)-1 : quota_us);
	return cg_write(s, CG_CPU, name, "cpu.cfs_quota_us", b, err, errlen);
}

/* kernel/sched/core.c: cpu.weight w is applied as shares w * 1024 / 100 (rounded). */
int64_t cg_weight_to_shares(int64_t weight)
{
	int64_t sh;

	if (weight < 1)
		weight = 1;
	if (weight > 10000)
		weight = 10000;
	sh = (weight * 1024 + 50) / 100;
	return sh < 2 ? 2 : sh > 262144 ? 262144 : sh;
}

int64_t cg_shares_to_weight(int64_t shares)
{
	int64_t w;

	if (shares < 2)
		shares = 2;
	if (shares > 262144)
		shares = 262144;
	w = (shares * 100 + 512) / 1024;
	return w < 1 ? 1 : w > 10000 ? 10000 : w;
}

int cg_get_weight(const struct cg_sys *s, const char *name, int64_t *weight, char *err, size_t errlen)
{
	char b[64];
	int64_t v;
	int v2 = cg_sys_mode(s, CG_CPU) == CG_V2, ret;

	ret = cg_read(s, CG_CPU, name, v2 ? "cpu.weight" : "cpu.shares", b, sizeof(b), err, errlen);
	if (ret < 0)
		return ret;
	if (parse_i64(b, &v) < 0) {
		seterr(err, errlen, "cgroup /%s: %s: malformed", name, v2 ? "cpu.weight" : "cpu.shares");
		return -EINVAL;
	}
	*weight = v2 ? v : cg_shares_to_weight(v);
	return 0;
}

int cg_set_weight(const struct cg_sys *s, const char *name, int64_t weight, char *err, size_t errlen)
{
	char b[64];
	int v2 = cg_sys_mode(s, CG_CPU) == CG_V2;

	if (weight < 1 || weight > 10000) {
		seterr(err, errlen, "cpu weight %" PRId64 ": outside 1..10000", weight);
		return -EINVAL;
	}
	snprintf(b, sizeof(b), "%" PRId64, v2 ? weight : cg_weight_to_shares(weight));
	return cg_write(s, CG_CPU, name, v2 ? "cpu.weight" : "cpu.shares", b, err, errlen);
}

int cg_get_idle(const struct cg_sys *s, const char *name, int *idle, char *err, size_t errlen)
{
	char b[32];
	int64_t v;
	int ret = cg_read(s, CG_CPU, name, "cpu.idle", b, sizeof(b), err, errlen);

	if (ret < 0)
		return ret;
	if (parse_i64(b, &v) < 0 || (v != 0 && v != 1)) {
		seterr(err, errlen, "cgroup /%s: cpu.idle: malformed", name);
		return -EINVAL;
	}
	*idle = (int)v;
	return 0;
}

int cg_set_idle(const struct cg_sys *s, const char *name, int idle, char *err, size_t errlen)
{
	return cg_write(s, CG_CPU, name, "cpu.idle", idle ? "1" : "0", err, errlen);
}

int cg_get_cpus(const struct cg_sys *s, const char *name, int effective, char *buf, size_t len, char *err,
		size_t errlen)
{
	const char *f = !effective ? "cpuset.cpus"
			: cg_sys_mode(s, CG_CPUSET) == CG_V2 ? "cpuset.cpus.effective" : "cpuset.effective_cpus";
	int ret = cg_read(s, CG_CPUSET, name, f, buf, len, err, errlen);

	if (ret >= 0) {
		chomp(buf);
		ret = 0;
	}
	return ret;
}

int cg_set_cpus(const struct cg_sys *s, const char *name, const char *cpus, char *err, size_t errlen)
{
	return cg_write(s, CG_CPUSET, name, "cpuset.cpus", cpus, err, errlen);
}

static const char *mem_file(const struct cg_sys *s, enum cg_knob k)
{
	struct cg_file f[2];

	if ((k != CG_KNOB_MEM_MAX && k != CG_KNOB_MEM_HIGH) || cg_knob_files(s, k, f) < 1)
		return NULL;
	return f[0].file;
}

int cg_get_mem(const struct cg_sys *s, const char *name, enum cg_knob k, int64_t *bytes, char *err,
	       size_t errlen)
{
	const char *f = mem_file(s, k);
	char b[64];
	int ret;

	if (!f) {
		seterr(err, errlen, "cgroup controller memory: not mounted");
		return -ENODEV;
	}
	ret = cg_read(s, CG_MEMORY, name, f, b, sizeof(b), err, errlen);
	if (ret < 0)
		return ret;
	chomp(b);
	if (!strcmp(b, "max")) {
		*bytes = -1;
		return 0;
	}
	if (parse_i64(b, bytes) < 0) {
		seterr(err, errlen, "cgroup /%s: %s: malformed", name, f);
		return -EINVAL;
	}
	/* v1 reports "no limit" as PAGE_COUNTER_MAX pages in bytes */
	if (cg_sys_mode(s, CG_MEMORY) == CG_V1 && *bytes >= (INT64_MAX / 4096) * 4096 / 2)
		*bytes = -1;
	return 0;
}

int cg_set_mem(const struct cg_sys *s, const char *name, enum cg_knob k, int64_t bytes, char *err,
	       size_t errlen)
{
	const char *f = mem_file(s, k);
	char b[64];

	if (!f) {
		seterr(err, errlen, "cgroup controller memory: not mounted");
		return -ENODEV;
	}
	if (bytes < 0)
		snprintf(b, sizeof(b), "%s", cg_sys_mode(s, CG_MEMORY) == CG_V2 ? "max" : "-1");
	else
		snprintf(b, sizeof(b), "%" PRId64, bytes);
	return cg_write(s, CG_MEMORY, name, f, b, err, errlen);
}

/* ---- v2 subtree_control ------------------------------------------------------------- */

/*
 * On v2 a child cgroup only gets a controller's files (cpu.max, cpuset.cpus,
 * memory.max) when its parent lists the controller in cgroup.subtree_control,
 * and a parent can only enable what its own cgroup.controllers lists. The
 * kernel takes "+name" / "-name" writes. A fixture tree (non-empty sysroot)
 * holds plain files, so there we do what the kernel would show: the file is
 * rewritten as the space-separated list (in cgroup.controllers' order), a
 * missing subtree_control reads as empty, and a child that has no
 * cgroup.controllers file takes its parent's subtree_control.
 */

static int is_fixture(const struct cg_sys *s)
{
	return s->root[0] != 0;
}

/* Whether the space-separated list has word w. */
static int list_has(const char *list, const char *w)
{
	size_t l = strlen(w);

	for (const char *p = list; *p;) {
		while (*p && isspace((unsigned char)*p))
			p++;
		if (!strncmp(p, w, l) && (!p[l] || isspace((unsigned char)p[l])))
			return 1;
		while (*p && !isspace((unsigned char)*p))
			p++;
	}
	return 0;
}

static void parent_of(const char *name, char *parent, size_t len)
{
	char *slash;

	snprintf(parent, len, "%s", name);
	slash = strrchr(parent, '/');
	if (slash)
		*slash = 0;
	else
		parent[0] = 0;
}

/* A cgroup file read as a list; a fixture's missing file reads as empty. */
static int read_list(const struct cg_sys *s, enum cg_ctrl c, const char *name, const char *file, char *buf,
		     size_t len, char *err, size_t errlen)
{
	int ret = cg_read(s, c, name, file, buf, len, err, errlen);

	if (ret == -ENOENT && is_fixture(s) && cg_exists(s, c, name)) {
		buf[0] = 0;
		ret = 0;
	}
	return ret < 0 ? ret : 0;
}

/* The controllers a cgroup can hand down (its cgroup.controllers). */
static int read_controllers(const struct cg_sys *s, enum cg_ctrl c, const char *name, char *buf, size_t len,
			    char *err, size_t errlen)
{
	char parent[CG_NAME_MAX];
	int ret = cg_read(s, c, name, "cgroup.controllers", buf, len, err, errlen);

	if (ret == -ENOENT && is_fixture(s) && *name && cg_exists(s, c, name)) {
		parent_of(name, parent, sizeof(parent));
		return read_list(s, c, parent, "cgroup.subtree_control", buf, len, err, errlen);
	}
	return ret < 0 ? ret : 0;
}

static int write_file_creat(const char *p, const char *value)
{
	int fd = open(p, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644), ret = 0;
	size_t l = strlen(value);

	if (fd < 0)
		return -errno;
	if (write(fd, value, l) != (ssize_t)l)
		ret = errno ? -errno : -EIO;
	if (close(fd) < 0 && !ret)
		ret = -errno;
	return ret;
}

int cg_subtree_set(const struct cg_sys *s, enum cg_ctrl c, const char *name, int on, char *err, size_t errlen)
{
	const char *ctl = ctrl_v2_names[c];
	char cur[512], avail[512], out[512], p[CG_PATH_MAX + 64], v[64];
	size_t o = 0;
	int ret;

	if (cg_sys_mode(s, c) != CG_V2) {
		seterr(err, errlen, "cgroup controller %s: not on cgroup v2 (no subtree_control)", cg_ctrl_name(c));
		return -EINVAL;
	}
	if (!is_fixture(s)) {
		snprintf(v, sizeof(v), "%c%s", on ? '+' : '-', ctl);
		return cg_write(s, c, name, "cgroup.subtree_control", v, err, errlen);
	}
	ret = read_list(s, c, name, "cgroup.subtree_control", cur, sizeof(cur), err, errlen);
	if (ret < 0)
		return ret;
	if (!!list_has(cur, ctl) == !!on)
		return 0;
	if (on) {
		ret = read_controllers(s, c, name, avail, sizeof(avail), err, errlen);
		if (ret < 0)
			return ret;
		if (!list_has(avail, ctl)) {
			seterr(err, errlen, "cgroup /%s: cgroup.subtree_control: writing '+%s': %s", name, ctl,
			       strerror(ENOENT));
			return -ENOENT;
		}
	}
	/* the new list in cgroup.controllers' order (the kernel prints subsystems in id order) */
	out[0] = 0;
	if (on) {
		for (char *tok = strtok(avail, " \t\n"); tok; tok = strtok(NULL, " \t\n"))
			if (list_has(cur, tok) || !strcmp(tok, ctl))
				o += (size_t)snprintf(out + o, sizeof(out) - o, "%s%s", o ? " " : "", tok);
		/* anything the file listed that the controllers file does not, kept at the end */
		for (char *tok = strtok(cur, " \t\n"); tok; tok = strtok(NULL, " \t\n"))
			if (!list_has(out, tok))
				o += (size_t)snprintf(out + o, sizeof(out) - o, "%s%s", o ? " " : "", tok);
	} else {
		for (char *tok = strtok(cur, " \t\n"); tok; tok = strtok(NULL, " \t\n"))
			if (strcmp(tok, ctl))
				o += (size_t)snprintf(out + o, sizeof(out) - o, "%s%s", o ? " " : "", tok);
	}
	snprintf(out + o, sizeof(out) - o, "\n");
	ret = file_path(s, c, name, "cgroup.subtree_control", p, sizeof(p), err, errlen);
	if (ret < 0)
		return ret;
	ret = write_file_creat(p, out);
	if (ret < 0)
		seterr(err, errlen, "%s: writing '%c%s': %s", p, on ? '+' : '-', ctl, strerror(-ret));
	return ret;
}

/* The distinct v2 controllers of mask, as one representative enum each. */
static int v2_wanted(const struct cg_sys *s, unsigned mask, enum cg_ctrl out[CG_NCTRL])
{
	int n = 0;

	for (int c = 0; c < CG_NCTRL; c++) {
		int dup = 0;

		if (!(mask & (1u << c)) || cg_sys_mode(s, (enum cg_ctrl)c) != CG_V2)
			continue;
		for (int k = 0; k < n; k++)
			if (!strcmp(ctrl_v2_names[out[k]], ctrl_v2_names[c]))
				dup = 1;
		if (!dup)
			out[n++] = (enum cg_ctrl)c;
	}
	return n;
}

static int add_entry(char ***list, size_t *n, const char *ctl, const char *name)
{
	char **nl = realloc(*list, (*n + 1) * sizeof(**list));

	if (!nl)
		return -ENOMEM;
	*list = nl;
	if (asprintf(&nl[*n], "%s:%s", ctl, name) < 0)
		return -ENOMEM;
	(*n)++;
	return 0;
}

int cg_subtree_missing(const struct cg_sys *s, const char *name, unsigned mask, char ***missing, size_t *nmissing,
		       char *err, size_t errlen)
{
	enum cg_ctrl want[CG_NCTRL];
	int nw = v2_wanted(s, mask, want), ret = 0;
	size_t l = strlen(name);
	char **list = NULL;
	size_t n = 0;

	*missing = NULL;
	*nmissing = 0;
	for (int k = 0; k < nw && ret == 0; k++) {
		enum cg_ctrl c = want[k];
		const char *ctl = ctrl_v2_names[c];
		int added_above = 0; /* enabled (by us) in the previous ancestor */

		/* every proper prefix of name, the root ("") first */
		for (size_t i = 0; i < l && ret == 0; i++) {
			char anc[CG_NAME_MAX], sub[512], avail[512];

			if (i && name[i] != '/')
				continue;
			if (i >= sizeof(anc)) {
				seterr(err, errlen, "cgroup /%s: name too long", name);
				ret = -ENAMETOOLONG;
				break;
			}
			memcpy(anc, name, i);
			anc[i] = 0;
			if (!cg_exists(s, c, anc))
				break; /* from here on the ancestors are ours to create */
			ret = read_list(s, c, anc, "cgroup.subtree_control", sub, sizeof(sub), err, errlen);
			if (!ret)
				ret = read_controllers(s, c, anc, avail, sizeof(avail), err, errlen);
			if (ret < 0)
				break;
			if (list_has(sub, ctl)) {
				added_above = 0;
				continue;
			}
			if (!list_has(avail, ctl) && !added_above)
				break; /* not available here: nothing below can have it either */
			if (add_entry(&list, &n, ctl, anc) < 0) {
				seterr(err, errlen, "out of memory");
				ret = -ENOMEM;
				break;
			}
			added_above = 1;
		}
	}
	if (ret < 0) {
		for (size_t i = 0; i < n; i++)
			free(list[i]);
		free(list);
		return ret;
	}
	*missing = list;
	*nmissing = n;
	return 0;
}

/* v2: enable every wanted controller in parent's subtree_control that it lacks and can hand down. */
static int subtree_enable_all(const struct cg_sys *s, const enum cg_ctrl *want, int nw, const char *parent,
			      char *err, size_t errlen)
{
	for (int k = 0; k < nw; k++) {
		enum cg_ctrl c = want[k];
		char sub[512], avail[512];
		int ret = read_list(s, c, parent, "cgroup.subtree_control", sub, sizeof(sub), err, errlen);

		if (!ret)
			ret = read_controllers(s, c, parent, avail, sizeof(avail), err, errlen);
		if (ret < 0)
			return ret;
		if (list_has(sub, ctrl_v2_names[c]) || !list_has(avail, ctrl_v2_names[c]))
			continue;
		ret = cg_subtree_set(s, c, parent, 1, err, errlen);
		if (ret < 0)
			return ret;
	}
	return 0;
}

/*
 * Fixture v2: a new directory gets what the kernel would show in it: its
 * cgroup.controllers (the parent's subtree_control), the core files, and the
 * interface files of each controller it has, at the kernel's defaults.
 */
static const struct {
	const char *ctl, *file, *value;
} fixture_files[] = {
	{ .ctl = "", .file = "cgroup.procs", .value = "" },
	{ .ctl = "", .file = "cgroup.subtree_control", .value = "\n" },
	{ .ctl = "cpu", .file = "cpu.max", .value = "max 100000\n" },
	{ .ctl = "cpu", .file = "cpu.weight", .value = "100\n" },
	{ .ctl = "cpu", .file = "cpu.stat", .value = "usage_usec 0\nuser_usec 0\nsystem_usec 0\n" },
	{ .ctl = "cpuset", .file = "cpuset.cpus", .value = "\n" },
	{ .ctl = "cpuset", .file = "cpuset.mems", .value = "\n" },
	{ .ctl = "memory", .file = "memory.max", .value = "max\n" },
	{ .ctl = "memory", .file = "memory.high", .value = "max\n" },
	{ .ctl = "memory", .file = "memory.current", .value = "0\n" },
};

static int fixture_populate(const struct cg_sys *s, enum cg_ctrl c, const char *name, const char *dir)
{
	char parent[CG_NAME_MAX], ctls[512], p[CG_PATH_MAX + 64];
	int ret;

	parent_of(name, parent, sizeof(parent));
	ret = read_list(s, c, parent, "cgroup.subtree_control", ctls, sizeof(ctls), NULL, 0);
	if (ret < 0)
		return ret;
	snprintf(p, sizeof(p), "%s/cgroup.controllers", dir);
	ret = write_file_creat(p, ctls);
	for (size_t i = 0; i < sizeof(fixture_files) / sizeof(fixture_files[0]) && ret == 0; i++) {
		if (*fixture_files[i].ctl && !list_has(ctls, fixture_files[i].ctl))
			continue;
		snprintf(p, sizeof(p), "%s/%s", dir, fixture_files[i].file);
		ret = write_file_creat(p, fixture_files[i].value);
	}
	return ret;
}

/* Fixture: the interface files vanish with the directory, as on the kernel; a child cgroup keeps it. */
static int fixture_rmdir(const char *d)
{
	DIR *dir = opendir(d);
	struct dirent *de;
	int ret = 0;

	if (!dir)
		return -errno;
	while ((de = readdir(dir)) != NULL && ret == 0) {
		struct stat st;

		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		if (fstatat(dirfd(dir), de->d_name, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISDIR(st.st_mode))
			ret = -EBUSY;
	}
	if (ret == 0) {
		rewinddir(dir);
		while ((de = readdir(dir)) != NULL) {
			struct stat st;

			if (fstatat(dirfd(dir), de->d_name, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISREG(st.st_mode))
				unlinkat(dirfd(dir), de->d_name, 0);
		}
	}
	closedir(dir);
	if (ret == 0 && rmdir(d) < 0)
		ret = -errno;
	return ret;
}

static int mkdir_one(const struct cg_sys *s, enum cg_ctrl c, const char *name, char *err, size_t errlen)
{
	char d[CG_PATH_MAX];
	int ret = 0;

	if (cg_dir(s, c, name, d, sizeof(d)) < 0) {
		seterr(err, errlen, "cgroup /%s: path too long", name);
		return -ENAMETOOLONG;
	}
	if (cg_sys_uses_libcgroup(s, c)) {
		struct cgroup *cg = cgroup_new_cgroup(name);

		if (!cg || !cgroup_add_controller(cg, cg_ctrl_name(c))) {
			ret = -ENOMEM;
		} else if (cgroup_create_cgroup(cg, 0)) {
			int e = cgroup_get_last_errno();

			ret = e > 0 ? -e : -EIO;
		}
		cgroup_free(&cg);
	} else if (mkdir(d, 0755) < 0) {
		ret = -errno;
	}
	if (ret == 0 && is_fixture(s) && cg_sys_mode(s, c) == CG_V2) {
		ret = fixture_populate(s, c, name, d);
		if (ret < 0)
			fixture_rmdir(d);
	}
	if (ret < 0) {
		seterr(err, errlen, "%s: creating cgroup: %s", d, strerror(-ret));
		return ret;
	}
	/* v1 cpuset: a new cgroup starts with no CPUs and no memory nodes. */
	if (c == CG_CPUSET && cg_sys_mode(s, c) == CG_V1) {
		char parent[CG_NAME_MAX], val[256];
		const char *files[] = { "cpuset.cpus", "cpuset.mems" };
		char *slash;

		snprintf(parent, sizeof(parent), "%s", name);
		slash = strrchr(parent, '/');
		if (slash)
			*slash = 0;
		else
			parent[0] = 0;
		for (size_t i = 0; i < 2; i++) {
			ret = cg_read(s, c, parent, files[i], val, sizeof(val), err, errlen);
			if (ret < 0)
				break;
			chomp(val);
			ret = cg_write(s, c, name, files[i], val, err, errlen);
			if (ret < 0)
				break;
		}
		if (ret < 0) {
			rmdir(d);
			return ret;
		}
	}
	return 0;
}

int cg_create(const struct cg_sys *s, const char *name, unsigned mask, char ***created, size_t *ncreated,
	      char *err, size_t errlen)
{
	char **list = NULL;
	size_t n = 0;
	int ret = 0;

	*created = NULL;
	*ncreated = 0;
	if (!*name) {
		seterr(err, errlen, "cgroup /: the root cgroup cannot be created");
		return -EINVAL;
	}
	for (int c = 0; c < CG_NCTRL; c++) {
		char prefix[CG_NAME_MAX];
		size_t l = strlen(name);
		enum cg_ctrl want[CG_NCTRL];
		int nw = 0;

		if (!(mask & (1u << c)) || cg_sys_mode(s, c) == CG_NONE)
			continue;
		if (cg_sys_mode(s, c) == CG_V2)
			nw = v2_wanted(s, mask, want);
		/* v2: one tree for every controller; create each directory once. */
		if (cg_sys_mode(s, c) == CG_V2) {
			int dup = 0;

			for (int p = 0; p < c; p++)
				if ((mask & (1u << p)) && cg_sys_mode(s, p) == CG_V2 &&
				    !strcmp(s->mount[p], s->mount[c]))
					dup = 1;
			if (dup)
				continue;
		}
		for (size_t i = 0; i <= l; i++) {
			char **nl;

			if (name[i] != '/' && name[i] != 0)
				continue;
			if (i >= sizeof(prefix)) {
				ret = -ENAMETOOLONG;
				seterr(err, errlen, "cgroup /%s: name too long", name);
				goto fail;
			}
			memcpy(prefix, name, i);
			prefix[i] = 0;
			/* v2: the parent hands the controllers down first (see cg_subtree_missing) */
			if (i && nw) {
				char parent[CG_NAME_MAX];

				parent_of(prefix, parent, sizeof(parent));
				ret = subtree_enable_all(s, want, nw, parent, err, errlen);
				if (ret < 0)
					goto fail;
			}
			if (cg_exists(s, c, prefix))
				continue;
			ret = mkdir_one(s, c, prefix, err, errlen);
			if (ret < 0)
				goto fail;
			nl = realloc(list, (n + 1) * sizeof(*list));
			if (!nl || asprintf(&nl[n], "%s:%s", cg_ctrl_name(c), prefix) < 0) {
				if (nl)
					list = nl;
				ret = -ENOMEM;
				seterr(err, errlen, "out of memory");
				goto fail;
			}
			list = nl;
			n++;
		}
	}
	*created = list;
	*ncreated = n;
	return 0;
fail:
	/* undo, innermost first: nothing is left behind */
	while (n > 0) {
		char *e = list[--n], *colon = strchr(e, ':');

		*colon = 0;
		cg_remove(s, (enum cg_ctrl)cg_ctrl_from_name(e), colon + 1, NULL, 0);
		free(e);
	}
	free(list);
	return ret;
}

int cg_remove(const struct cg_sys *s, enum cg_ctrl c, const char *name, char *err, size_t errlen)
{
	char d[CG_PATH_MAX];
	int ret = 0;

	if (!*name) {
		seterr(err, errlen, "cgroup /: the root cgroup cannot be removed");
		return -EINVAL;
	}
	if (cg_dir(s, c, name, d, sizeof(d)) < 0) {
		seterr(err, errlen, "cgroup /%s: path too long", name);
		return -ENAMETOOLONG;
	}
	if (!cg_exists(s, c, name))
		return -ENOENT;
	if (cg_sys_uses_libcgroup(s, c)) {
		struct cgroup *cg = cgroup_new_cgroup(name);

		if (!cg || !cgroup_add_controller(cg, cg_ctrl_name(c))) {
			ret = -ENOMEM;
		} else if (cgroup_delete_cgroup_ext(cg, CGFLAG_DELETE_EMPTY_ONLY)) {
			int e = cgroup_get_last_errno();

			ret = e > 0 ? -e : -EBUSY;
		}
		cgroup_free(&cg);
	} else if (is_fixture(s) && cg_sys_mode(s, c) == CG_V2) {
		ret = fixture_rmdir(d);
	} else if (rmdir(d) < 0) {
		ret = -errno;
	}
	if (ret < 0)
		seterr(err, errlen, "%s: removing cgroup: %s", d, strerror(-ret));
	return ret;
}

int cg_check_pid(const struct cg_sys *s, pid_t pid, char *err, size_t errlen)
{
	char p[CG_PATH_MAX + 32];
	struct stat st;

	snprintf(p, sizeof(p), "%s/proc/%d", s->root, (int)pid);
	if (pid <= 0 || stat(p, &st) < 0) {
		seterr(err, errlen, "pid %d: no such process", (int)pid);
		return -ESRCH;
	}
	return 0;
}

int cg_attach_pid(const struct cg_sys *s, enum cg_ctrl c, const char *name, pid_t pid, char *err,
		  size_t errlen)
{
	char b[32];
	int ret = cg_check_pid(s, pid, err, errlen);

	if (ret < 0)
		return ret;
	snprintf(b, sizeof(b), "%d", (int)pid);
	ret = cg_write(s, c, name, "cgroup.procs", b, err, errlen);
	if (ret == -ESRCH)
		seterr(err, errlen, "pid %d: no such process", (int)pid);
	return ret;
}

int cg_pid_cgroup(const struct cg_sys *s, pid_t pid, enum cg_ctrl c, char *name, size_t len, char *err,
		  size_t errlen)
{
	char p[CG_PATH_MAX + 32], line[2048];
	enum cg_mode mode = cg_sys_mode(s, c);
	const char *want = mode == CG_V2 ? ctrl_v2_names[c] : ctrl_names[c];
	FILE *f;
	int ret = -ENOENT;

	snprintf(p, sizeof(p), "%s/proc/%d/cgroup", s->root, (int)pid);
	f = fopen(p, "re");
	if (!f) {
		seterr(err, errlen, "pid %d: no such process", (int)pid);
		return -ESRCH;
	}
	while (fgets(line, sizeof(line), f)) {
		char *a = strchr(line, ':'), *b2 = a ? strchr(a + 1, ':') : NULL;

		if (!a || !b2)
			continue;
		*b2 = 0;
		chomp(b2 + 1);
		if (mode == CG_V2 ? (line[0] == '0' && a[1] == 0) : has_opt(a + 1, want)) {
			if (lex_normalize(b2 + 1, name, len) < 0)
				break;
			ret = 0;
			break;
		}
	}
	fclose(f);
	if (ret < 0)
		seterr(err, errlen, "pid %d: not in any %s cgroup", (int)pid, cg_ctrl_name(c));
	return ret;
}

int cg_pids(const struct cg_sys *s, enum cg_ctrl c, const char *name, pid_t **pids, size_t *n, char *err,
	    size_t errlen)
{
	char p[CG_PATH_MAX + 64], line[64];
	pid_t *v = NULL;
	size_t cnt = 0, cap = 0;
	FILE *f;
	int ret;

	*pids = NULL;
	*n = 0;
	ret = file_path(s, c, name, "cgroup.procs", p, sizeof(p), err, errlen);
	if (ret < 0)
		return ret;
	f = fopen(p, "re");
	if (!f) {
		ret = -errno;
		if (!cg_exists(s, c, name))
			seterr(err, errlen, "cgroup /%s: no such cgroup in the %s hierarchy", name, cg_ctrl_name(c));
		else
			seterr(err, errlen, "%s: %s", p, strerror(errno));
		return ret;
	}
	while (fgets(line, sizeof(line), f)) {
		long x = strtol(line, NULL, 10);

		if (x <= 0)
			continue;
		if (cnt == cap) {
			pid_t *nv = realloc(v, (cap ? cap * 2 : 16) * sizeof(*v));

			if (!nv) {
				ret = -ENOMEM;
				seterr(err, errlen, "out of memory");
				goto out;
			}
			v = nv;
			cap = cap ? cap * 2 : 16;
		}
		v[cnt++] = (pid_t)x;
	}
	*pids = v;
	*n = cnt;
	v = NULL;
	ret = 0;
out:
	fclose(f);
	free(v);
	return ret;
}
