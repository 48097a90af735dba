/*
 * affinity.c: CPU lists and per-thread sched_setaffinity (see affinity.h).
 *
 * sched_setaffinity acts on one thread, so a process is pinned by walking
 * /proc/PID/task. A thread created during the walk inherits its creator's
 * mask, which may still be the old one; aff_set_process therefore repeats
 * the walk until a pass meets only threads it already set (bounded to a few
 * passes so that a fork storm cannot hold us forever).
 */
#include "controller/affinity.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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

int aff_parse_list(const char *list, cpu_set_t *set, char *err, size_t errlen)
{
	const char *p = list;

	CPU_ZERO(set);
	while (p && isspace((unsigned char)*p))
		p++;
	if (!p || !*p) {
		seterr(err, errlen, "CPU list '%s': empty", list ? list : "");
		return -EINVAL;
	}
	while (*p) {
		char *end;
		long a, b;

		if (!isdigit((unsigned char)*p))
			goto bad;
		a = strtol(p, &end, 10);
		b = a;
		p = end;
		if (*p == '-') {
			p++;
			if (!isdigit((unsigned char)*p))
				goto bad;
			b = strtol(p, &end, 10);
			p = end;
		}
		if (a > b || b >= AFF_MAX_CPUS) {
			seterr(err, errlen, "CPU list '%s': range %ld-%ld is invalid", list, a, b);
			return -EINVAL;
		}
		for (long c = a; c <= b; c++)
			CPU_SET((int)c, set);
		while (isspace((unsigned char)*p))
			p++;
		if (*p == ',')
			p++;
		else if (*p)
			goto bad;
	}
	return 0;
bad:
	seterr(err, errlen, "CPU list '%s': malformed (want e.g. 0-3,6)", list);
	return -EINVAL;
}

void aff_format_list(const cpu_set_t *set, char *buf, size_t len)
{
	size_t o = 0;

	if (len)
		buf[0] = 0;
	for (int c = 0; c < AFF_MAX_CPUS && c < CPU_SETSIZE; c++) {
		int e = c, w;

		if (!CPU_ISSET(c, set))
			continue;
		while (e + 1 < CPU_SETSIZE && CPU_ISSET(e + 1, set))
			e++;
		if (e == c)
			w = snprintf(buf + o, len - o, "%s%d", o ? "," : "", c);
		else
			w = snprintf(buf + o, len - o, "%s%d-%d", o ? "," : "", c, e);
		if (w < 0 || (size_t)w >= len - o)
			return;
		o += (size_t)w;
		c = e;
	}
}

int aff_online(const char *root, cpu_set_t *set, char *err, size_t errlen)
{
	char p[1100], b[1024];
	FILE *f;
	int ret = 0;

	snprintf(p, sizeof(p), "%s/sys/devices/system/cpu/online", root ? root : "");
	f = fopen(p, "re");
	if (!f) {
		seterr(err, errlen, "%s: %s", p, strerror(errno));
		return -errno;
	}
	if (!fgets(b, sizeof(b), f)) {
		seterr(err, errlen, "%s: empty", p);
		ret = -EINVAL;
	} else {
		b[strcspn(b, "\n")] = 0;
		ret = aff_parse_list(b, set, err, errlen);
	}
	fclose(f);
	return ret;
}

int aff_check_list(const char *root, const char *list, cpu_set_t *set, char *err, size_t errlen)
{
	cpu_set_t on;
	int ret = aff_parse_list(list, set, err, errlen);

	if (ret < 0)
		return ret;
	ret = aff_online(root, &on, err, errlen);
	if (ret < 0)
		return ret;
	for (int c = 0; c < CPU_SETSIZE; c++)
		if (CPU_ISSET(c, set) && !CPU_ISSET(c, &on)) {
			char ol[256];

			aff_format_list(&on, ol, sizeof(ol));
			seterr(err, errlen, "CPU list '%s': CPU %d is not online (online: %s)", list, c, ol);
			return -EINVAL;
		}
	return 0;
}

int aff_tids(const char *root, pid_t pid, pid_t **tids, size_t *n, char *err, size_t errlen)
{
	char p[1100];
	DIR *d;
	struct dirent *de;
	pid_t *v = NULL;
	size_t cnt = 0, cap = 0;
	int ret = 0;

	*tids = NULL;
	*n = 0;
	snprintf(p, sizeof(p), "%s/proc/%d/task", root ? root : "", (int)pid);
	d = opendir(p);
	if (!d) {
		seterr(err, errlen, "pid %d: no such process", (int)pid);
		return -ESRCH;
	}
	while ((de = readdir(d))) {
		long t = strtol(de->d_name, NULL, 10);

		if (t <= 0)
			continue;
		if (cnt == cap) {
			pid_t *nv = realloc(v, (cap ? cap * 2 : 32) * sizeof(*v));

			if (!nv) {
				ret = -ENOMEM;
				seterr(err, errlen, "out of memory");
				goto out;
			}
			v = nv;
			cap = cap ? cap * 2 : 32;
		}
		v[cnt++] = (pid_t)t;
	}
	*tids = v;
	*n = cnt;
	v = NULL;
out:
	closedir(d);
	free(v);
	return ret;
}

int aff_get(pid_t tid, cpu_set_t *set, char *err, size_t errlen)
{
	if (sched_getaffinity(tid, sizeof(*set), set) < 0) {
		int e = errno;

		seterr(err, errlen, "thread %d: reading affinity: %s", (int)tid, strerror(e));
		return -e;
	}
	return 0;
}

int aff_set(pid_t tid, const cpu_set_t *set, char *err, size_t errlen)
{
	if (sched_setaffinity(tid, sizeof(*set), set) < 0) {
		int e = errno;
		char l[256];

		aff_format_list(set, l, sizeof(l));
		seterr(err, errlen, "thread %d: setting affinity to %s: %s", (int)tid, l, strerror(e));
		return -e;
	}
	return 0;
}

static int seen(const pid_t *v, size_t n, pid_t t)
{
	for (size_t i = 0; i < n; i++)
		if (v[i] == t)
			return 1;
	return 0;
}

int aff_set_process(const char *root, pid_t pid, const cpu_set_t *set, char *err, size_t errlen)
{
	pid_t *done = NULL;
	size_t ndone = 0;
	int ret = 0;

	for (int pass = 0; pass < 8; pass++) {
		pid_t *tids;
		size_t n, fresh = 0;

		ret = aff_tids(root, pid, &tids, &n, err, errlen);
		if (ret < 0)
			goto out;
		for (size_t i = 0; i < n; i++) {
			pid_t *nd;

			if (seen(done, ndone, tids[i]))
				continue;
			ret = aff_set(tids[i], set, err, errlen);
			if (ret == -ESRCH)
				continue; /* exited meanwhile */
			if (ret < 0) {
				free(tids);
				goto out;
			}
			nd = realloc(done, (ndone + 1) * sizeof(*done));
			if (!nd) {
				free(tids);
				ret = -ENOMEM;
				seterr(err, errlen, "out of memory");
				goto out;
			}
			done = nd;
			done[ndone++] = tids[i];
			fresh++;
		}
		free(tids);
		if (!fresh && pass > 0)
			break;
	}
	ret = (int)ndone;
out:
	free(done);
	return ret;
}
