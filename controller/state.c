/*
 * state.c: the revert state file (see state.h).
 *
 * DESIGN
 * The state is kept in memory as the jansson tree that is written to disk,
 * so what is saved is exactly what revert reads. Values are JSON strings
 * holding the file's bytes as read (jansson escapes newlines and control
 * bytes), which is what makes the restore byte for byte.
 */
#include "controller/state.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <sched.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "controller/admin.h"
#include "controller/affinity.h"

struct cstate {
	char path[1024];
	json_t *root;
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

const char *cstate_default_path(void)
{
	const char *e = getenv("EDGECTL_STATE");

	return e && *e ? e : CSTATE_DEFAULT_PATH;
}

static json_t *arr(struct cstate *st, const char *key)
{
	json_t *a = json_object_get(st->root, key);

	if (!json_is_array(a)) {
		a = json_array();
		json_object_set_new(st->root, key, a);
	}
	return a;
}

int cstate_load(const char *path, struct cstate **out, char *err, size_t errlen)
{
	struct cstate *st;
	json_error_t je;
	json_t *root;

	*out = NULL;
	root = json_load_file(path, 0, &je);
	if (!root) {
		if (access(path, F_OK) < 0) {
			seterr(err, errlen, "state %s: no such file (nothing to revert)", path);
			return -ENOENT;
		}
		seterr(err, errlen, "state %s: line %d: %s", path, je.line, je.text);
		return -EINVAL;
	}
	if (!json_is_object(root) || json_integer_value(json_object_get(root, "version")) != 1) {
		seterr(err, errlen, "state %s: not an edgectl state file (version 1)", path);
		json_decref(root);
		return -EINVAL;
	}
	st = calloc(1, sizeof(*st));
	if (!st) {
		json_decref(root);
		seterr(err, errlen, "out of memory");
		return -ENOMEM;
	}
	snprintf(st->path, sizeof(st->path), "%s", path);
	st->root = root;
	*out = st;
	return 0;
}

int cstate_open(const char *path, const char *who, struct cstate **out, char *err, size_t errlen)
{
	struct cstate *st;
	int ret = cstate_load(path, out, err, errlen);
	char ts[64];
	time_t now = time(NULL);
	struct tm tm;

	if (ret != -ENOENT)
		return ret;
	st = calloc(1, sizeof(*st));
	if (!st) {
		seterr(err, errlen, "out of memory");
		return -ENOMEM;
	}
	snprintf(st->path, sizeof(st->path), "%s", path);
	gmtime_r(&now, &tm);
	strftime(ts, sizeof(ts), "%Y-%m-%dT%H:%M:%SZ", &tm);
	st->root = json_pack("{s:i, s:s, s:s, s:i}", "version", 1, "who", who ? who : "edgectl", "created_at", ts,
			     "edgectl_pid", (int)getpid());
	if (!st->root) {
		free(st);
		seterr(err, errlen, "out of memory");
		return -ENOMEM;
	}
	*out = st;
	return 0;
}

void cstate_free(struct cstate *st)
{
	if (!st)
		return;
	json_decref(st->root);
	free(st);
}

const char *cstate_path(const struct cstate *st)
{
	return st->path;
}

int cstate_empty(const struct cstate *st)
{
	static const char *const keys[] = { "files", "created", "subtree", "membership", "affinity", "threads", "sched" };

	for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
		json_t *v = json_object_get(st->root, keys[i]);

		if ((json_is_array(v) && json_array_size(v)) || json_is_object(v))
			return 0;
	}
	return 1;
}

static int mkdir_p(const char *dir)
{
	char tmp[1024];

	snprintf(tmp, sizeof(tmp), "%s", dir);
	for (char *p = tmp + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = 0;
		if (mkdir(tmp, 0755) < 0 && errno != EEXIST)
			return -errno;
		*p = '/';
	}
	if (mkdir(tmp, 0755) < 0 && errno != EEXIST)
		return -errno;
	return 0;
}

int cstate_save(struct cstate *st, char *err, size_t errlen)
{
	char tmp[1100], dirbuf[1024], *dir;
	char *text = NULL;
	int fd = -1, dfd = -1, ret = 0;
	size_t len, off = 0;

	snprintf(dirbuf, sizeof(dirbuf), "%s", st->path);
	dir = dirname(dirbuf);
	if (mkdir_p(dir) < 0) {
		ret = -errno;
		seterr(err, errlen, "state %s: creating %s: %s", st->path, dir, strerror(errno));
		goto out;
	}
	snprintf(tmp, sizeof(tmp), "%s.tmp", st->path);
	text = json_dumps(st->root, JSON_INDENT(1) | JSON_PRESERVE_ORDER);
	if (!text) {
		ret = -ENOMEM;
		seterr(err, errlen, "out of memory");
		goto out;
	}
	len = strlen(text);
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0) {
		ret = -errno;
		seterr(err, errlen, "state %s: %s", tmp, strerror(errno));
		goto out;
	}
	while (off < len) {
		ssize_t w = write(fd, text + off, len - off);

		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0) {
			ret = -errno;
			seterr(err, errlen, "state %s: writing: %s", tmp, strerror(errno));
			goto out;
		}
		off += (size_t)w;
	}
	if (write(fd, "\n", 1) != 1 || fsync(fd) < 0) {
		ret = -errno;
		seterr(err, errlen, "state %s: writing: %s", tmp, strerror(errno));
		goto out;
	}
	close(fd);
	fd = -1;
	if (rename(tmp, st->path) < 0) {
		ret = -errno;
		seterr(err, errlen, "state %s: rename: %s", st->path, strerror(errno));
		goto out;
	}
	dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd >= 0)
		fsync(dfd);
out:
	if (fd >= 0) {
		close(fd);
		unlink(tmp);
	}
	if (dfd >= 0)
		close(dfd);
	free(text);
	return ret;
}

int cstate_note_file(struct cstate *st, const struct cg_sys *s, enum cg_ctrl c, const char *name,
		     const char *file, char *err, size_t errlen)
{
	json_t *a = arr(st, "files"), *e;
	size_t i;
	char buf[8192];
	int ret;

	json_array_foreach(a, i, e) {
		if (!strcmp(json_string_value(json_object_get(e, "ctrl")) ?: "", cg_ctrl_name(c)) &&
		    !strcmp(json_string_value(json_object_get(e, "cgroup")) ?: "", name) &&
		    !strcmp(json_string_value(json_object_get(e, "file")) ?: "", file))
			return 0;
	}
	ret = cg_read(s, c, name, file, buf, sizeof(buf), err, errlen);
	if (ret < 0)
		return ret;
	e = json_pack("{s:s, s:s, s:s, s:s#}", "ctrl", cg_ctrl_name(c), "cgroup", name, "file", file, "value", buf,
		      (size_t)ret);
	if (!e || json_array_append_new(a, e) < 0) {
		seterr(err, errlen, "out of memory");
		return -ENOMEM;
	}
	return 0;
}

int cstate_note_knob(struct cstate *st, const struct cg_sys *s, enum cg_knob k, const char *name, char *err,
		     size_t errlen)
{
	struct cg_file f[2];
	int n = cg_knob_files(s, k, f), ret = 0;

	if (n == 0) {
		seterr(err, errlen, "cgroup knob %s: its controller is not mounted", cg_knob_name(k));
		return -ENODEV;
	}
	for (int i = 0; i < n && ret == 0; i++)
		ret = cstate_note_file(st, s, f[i].ctrl, name, f[i].file, err, errlen);
	return ret;
}

int cstate_note_created(struct cstate *st, enum cg_ctrl c, const char *name)
{
	json_t *a = arr(st, "created"), *e;
	size_t i;

	json_array_foreach(a, i, e) {
		if (!strcmp(json_string_value(json_object_get(e, "ctrl")) ?: "", cg_ctrl_name(c)) &&
		    !strcmp(json_string_value(json_object_get(e, "cgroup")) ?: "", name))
			return 0;
	}
	e = json_pack("{s:s, s:s}", "ctrl", cg_ctrl_name(c), "cgroup", name);
	return e ? json_array_append_new(a, e) : -ENOMEM;
}

int cstate_note_subtree(struct cstate *st, const char *ctrl, const char *name)
{
	json_t *a = arr(st, "subtree"), *e;
	size_t i;

	json_array_foreach(a, i, e) {
		if (!strcmp(json_string_value(json_object_get(e, "ctrl")) ?: "", ctrl) &&
		    !strcmp(json_string_value(json_object_get(e, "cgroup")) ?: "", name))
			return 0;
	}
	e = json_pack("{s:s, s:s}", "ctrl", ctrl, "cgroup", name);
	return e ? json_array_append_new(a, e) : -ENOMEM;
}

int cstate_note_subtree_missing(struct cstate *st, const struct cg_sys *s, const char *name, unsigned mask,
				char *err, size_t errlen)
{
	char **miss = NULL;
	size_t n = 0;
	int ret = cg_subtree_missing(s, name, mask, &miss, &n, err, errlen);

	for (size_t i = 0; i < n; i++) {
		char *colon = strchr(miss[i], ':');

		*colon = 0;
		if (!ret && cstate_note_subtree(st, miss[i], colon + 1) < 0) {
			seterr(err, errlen, "out of memory");
			ret = -ENOMEM;
		}
		free(miss[i]);
	}
	free(miss);
	return ret;
}

int cstate_note_membership(struct cstate *st, const struct cg_sys *s, pid_t pid, enum cg_ctrl c, char *err,
			   size_t errlen)
{
	json_t *a = arr(st, "membership"), *e;
	size_t i;
	char name[CG_NAME_MAX];
	int ret;

	json_array_foreach(a, i, e) {
		if (json_integer_value(json_object_get(e, "pid")) == pid &&
		    !strcmp(json_string_value(json_object_get(e, "ctrl")) ?: "", cg_ctrl_name(c)))
			return 0;
	}
	ret = cg_pid_cgroup(s, pid, c, name, sizeof(name), err, errlen);
	if (ret < 0)
		return ret;
	e = json_pack("{s:i, s:s, s:s}", "pid", (int)pid, "ctrl", cg_ctrl_name(c), "cgroup", name);
	return e ? json_array_append_new(a, e) : -ENOMEM;
}

int cstate_note_affinity(struct cstate *st, const char *root, pid_t pid, char *err, size_t errlen)
{
	json_t *a = arr(st, "affinity"), *e;
	pid_t *tids = NULL;
	size_t n = 0;
	int ret = aff_tids(root, pid, &tids, &n, err, errlen);

	if (ret < 0)
		return ret;
	for (size_t t = 0; t < n; t++) {
		cpu_set_t set;
		char l[1024];
		size_t i;
		int dup = 0;

		json_array_foreach(a, i, e) {
			if (json_integer_value(json_object_get(e, "tid")) == tids[t])
				dup = 1;
		}
		if (dup)
			continue;
		if (aff_get(tids[t], &set, err, errlen) < 0)
			continue; /* exited meanwhile */
		aff_format_list(&set, l, sizeof(l));
		e = json_pack("{s:i, s:i, s:s}", "pid", (int)pid, "tid", (int)tids[t], "cpus", l);
		if (!e || json_array_append_new(a, e) < 0) {
			ret = -ENOMEM;
			seterr(err, errlen, "out of memory");
			break;
		}
	}
	free(tids);
	return ret;
}

int cstate_note_threads(struct cstate *st, const char *admin_sock, int n)
{
	if (json_is_object(json_object_get(st->root, "threads")))
		return 0;
	return json_object_set_new(st->root, "threads", json_pack("{s:s, s:i}", "socket", admin_sock, "n", n));
}

int cstate_note_sched(struct cstate *st, const char *admin_sock, pid_t pid, int prio, const pid_t *tids, int ntids)
{
	json_t *a;

	if (json_is_object(json_object_get(st->root, "sched")))
		return 0;
	a = json_array();
	for (int i = 0; i < ntids; i++)
		json_array_append_new(a, json_integer(tids[i]));
	return json_object_set_new(st->root, "sched", json_pack("{s:s, s:i, s:i, s:o}", "socket", admin_sock, "pid", (int)pid,
								  "prio", prio, "tids", a));
}

static void logf_(cstate_log_fn log, void *ud, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void logf_(cstate_log_fn log, void *ud, const char *fmt, ...)
{
	char line[1024];
	va_list ap;

	if (!log)
		return;
	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	log(ud, line);
}

static const char *jstr(json_t *o, const char *k)
{
	const char *v = json_string_value(json_object_get(o, k));

	return v ? v : "";
}

int cstate_revert(struct cstate *st, const struct cg_sys *s, cstate_log_fn log, void *ud, char *err,
		  size_t errlen)
{
	char e1[512];
	int failed = 0;
	json_t *a, *e, *th;
	size_t i;

	if (err && errlen)
		err[0] = 0;
#define FAIL(...)                                                         \
	do {                                                              \
		logf_(log, ud, "failed: " __VA_ARGS__);                   \
		if (!failed)                                              \
			seterr(err, errlen, __VA_ARGS__);                 \
		failed++;                                                 \
	} while (0)

	th = json_object_get(st->root, "sched");
	if (json_is_object(th)) {
		const char *sock = jstr(th, "socket");
		int prio = (int)json_integer_value(json_object_get(th, "prio"));
		pid_t pid = (pid_t)json_integer_value(json_object_get(th, "pid"));
		json_t *tids = json_object_get(th, "tids");

		if (cadmin_set_rt(sock, prio, e1, sizeof(e1)) == 0) {
			if (prio)
				logf_(log, ud, "sched: core workers back to SCHED_FIFO %d", prio);
			else
				logf_(log, ud, "sched: core workers back to SCHED_OTHER");
		} else if (access(sock, F_OK) == 0) {
			FAIL("sched: %s", e1);
		} else {
			/* no admin socket: the workers one by one, where they still run */
			struct sched_param sp = { .sched_priority = prio };
			int back = 0;

			json_array_foreach(tids, i, e) {
				char task[64];
				pid_t tid = (pid_t)json_integer_value(e);

				snprintf(task, sizeof(task), "/proc/%d/task/%d", (int)pid, (int)tid);
				if (pid <= 0 || tid <= 0 || access(task, F_OK) < 0)
					continue;
				if (sched_setscheduler(tid, prio ? SCHED_FIFO : SCHED_OTHER, &sp) < 0)
					FAIL("sched: thread %d: %s", (int)tid, strerror(errno));
				else
					back++;
			}
			logf_(log, ud, "sched: core admin socket %s is gone; %d worker thread(s) still running put back", sock,
			      back);
		}
	}

	th = json_object_get(st->root, "threads");
	if (json_is_object(th)) {
		const char *sock = jstr(th, "socket");
		int n = (int)json_integer_value(json_object_get(th, "n"));

		if (cadmin_set_threads(sock, n, e1, sizeof(e1)) < 0) {
			if (access(sock, F_OK) < 0)
				logf_(log, ud, "threads: core admin socket %s is gone, skipped", sock);
			else
				FAIL("threads: %s", e1);
		} else {
			logf_(log, ud, "threads: pool size back to %d", n);
		}
	}

	a = json_object_get(st->root, "files");
	for (i = json_array_size(a); i-- > 0;) {
		int c;

		e = json_array_get(a, i);
		c = cg_ctrl_from_name(jstr(e, "ctrl"));
		if (c < 0)
			continue;
		if (!cg_exists(s, (enum cg_ctrl)c, jstr(e, "cgroup"))) {
			logf_(log, ud, "%s /%s %s: cgroup is gone, skipped", jstr(e, "ctrl"), jstr(e, "cgroup"),
			      jstr(e, "file"));
			continue;
		}
		if (cg_write(s, (enum cg_ctrl)c, jstr(e, "cgroup"), jstr(e, "file"), jstr(e, "value"), e1, sizeof(e1)) < 0)
			FAIL("%s", e1);
		else
			logf_(log, ud, "%s /%s %s: restored", jstr(e, "ctrl"), jstr(e, "cgroup"), jstr(e, "file"));
	}

	a = json_object_get(st->root, "membership");
	json_array_foreach(a, i, e) {
		int c = cg_ctrl_from_name(jstr(e, "ctrl"));
		pid_t pid = (pid_t)json_integer_value(json_object_get(e, "pid"));
		int r;

		if (c < 0)
			continue;
		r = cg_attach_pid(s, (enum cg_ctrl)c, jstr(e, "cgroup"), pid, e1, sizeof(e1));
		if (r == -ESRCH)
			logf_(log, ud, "pid %d: gone, membership skipped", (int)pid);
		else if (r < 0)
			FAIL("%s", e1);
		else
			logf_(log, ud, "pid %d: back in %s cgroup /%s", (int)pid, jstr(e, "ctrl"), jstr(e, "cgroup"));
	}

	a = json_object_get(st->root, "affinity");
	json_array_foreach(a, i, e) {
		pid_t tid = (pid_t)json_integer_value(json_object_get(e, "tid"));
		pid_t pid = (pid_t)json_integer_value(json_object_get(e, "pid"));
		cpu_set_t set;
		int r;

		if (aff_parse_list(jstr(e, "cpus"), &set, e1, sizeof(e1)) < 0) {
			FAIL("thread %d: %s", (int)tid, e1);
			continue;
		}
		r = aff_set(tid, &set, e1, sizeof(e1));
		if (r == -ESRCH)
			continue;
		if (r < 0)
			FAIL("%s", e1);
		/* threads born after the state was taken get their process leader's old mask */
		if (tid == pid) {
			pid_t *tids = NULL;
			size_t n = 0;

			if (aff_tids(cg_sys_root(s), pid, &tids, &n, NULL, 0) == 0) {
				for (size_t t = 0; t < n; t++) {
					size_t j;
					json_t *e2;
					int known = 0;

					json_array_foreach(a, j, e2) {
						if (json_integer_value(json_object_get(e2, "tid")) == tids[t])
							known = 1;
					}
					if (!known) {
						int r2 = aff_set(tids[t], &set, e1, sizeof(e1));

						if (r2 < 0 && r2 != -ESRCH)
							FAIL("%s", e1);
					}
				}
				free(tids);
			}
		}
	}
	if (json_array_size(a))
		logf_(log, ud, "affinity: %zu threads restored", json_array_size(a));

	a = json_object_get(st->root, "created");
	for (i = json_array_size(a); i-- > 0;) {
		int c, r;
		const char *name;

		e = json_array_get(a, i);
		c = cg_ctrl_from_name(jstr(e, "ctrl"));
		name = jstr(e, "cgroup");
		if (c < 0 || !cg_exists(s, (enum cg_ctrl)c, name))
			continue;
		/* tasks still inside (children born there) go where the recorded process came from */
		{
			pid_t *pids = NULL;
			size_t n = 0;
			const char *dest = "";
			size_t j;
			json_t *m;

			json_array_foreach(json_object_get(st->root, "membership"), j, m) {
				if (!strcmp(jstr(m, "ctrl"), jstr(e, "ctrl")))
					dest = jstr(m, "cgroup");
			}
			if (cg_pids(s, (enum cg_ctrl)c, name, &pids, &n, NULL, 0) == 0) {
				for (size_t k = 0; k < n; k++)
					cg_attach_pid(s, (enum cg_ctrl)c, dest, pids[k], NULL, 0);
				free(pids);
			}
		}
		r = cg_remove(s, (enum cg_ctrl)c, name, e1, sizeof(e1));
		if (r < 0 && r != -ENOENT)
			FAIL("%s", e1);
		else
			logf_(log, ud, "%s cgroup /%s: removed", jstr(e, "ctrl"), name);
	}

	/* v2 controllers we enabled in cgroups that were there before: off again, innermost first */
	a = json_object_get(st->root, "subtree");
	for (i = json_array_size(a); i-- > 0;) {
		int c, r;
		const char *name;

		e = json_array_get(a, i);
		c = cg_ctrl_from_name(jstr(e, "ctrl"));
		name = jstr(e, "cgroup");
		if (c < 0)
			continue;
		if (!cg_exists(s, (enum cg_ctrl)c, name)) {
			logf_(log, ud, "cgroup /%s: gone, subtree_control %s skipped", name, jstr(e, "ctrl"));
			continue;
		}
		r = cg_subtree_set(s, (enum cg_ctrl)c, name, 0, e1, sizeof(e1));
		if (r == -EBUSY)
			logf_(log, ud, "cgroup /%s: %s left enabled in subtree_control (a child cgroup now uses it)",
			      name, jstr(e, "ctrl"));
		else if (r < 0)
			FAIL("%s", e1);
		else
			logf_(log, ud, "cgroup /%s: subtree_control -%s", name, jstr(e, "ctrl"));
	}
#undef FAIL
	if (failed)
		return -EIO;
	if (unlink(st->path) < 0 && errno != ENOENT) {
		seterr(err, errlen, "state %s: removing: %s", st->path, strerror(errno));
		return -errno;
	}
	return 0;
}
