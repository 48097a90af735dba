/*
 * fsread.c: small-file readers for the collectors (see fsread.h).
 * Files in procfs/sysfs are read with one read(2) into a caller buffer: they
 * are generated on open and a single read returns a consistent view.
 */
#include "collectors/fsread.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int fsr_read(const char *path, char *buf, size_t len)
{
	int fd, ret;
	size_t got = 0;

	if (!len)
		return -EINVAL;
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	while (got < len - 1) {
		ssize_t n = read(fd, buf + got, len - 1 - got);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			ret = -errno;
			goto out;
		}
		if (n == 0)
			break;
		got += (size_t)n;
	}
	buf[got] = 0;
	ret = (int)got;
out:
	close(fd);
	return ret;
}

int fsr_parse_u64(const char *s, uint64_t *v)
{
	char *end;

	while (*s == ' ' || *s == '\t')
		s++;
	if (!isdigit((unsigned char)*s))
		return -EINVAL;
	errno = 0;
	unsigned long long x = strtoull(s, &end, 10);
	if (errno)
		return -EINVAL;
	while (*end == ' ' || *end == '\t' || *end == '\n')
		end++;
	if (*end)
		return -EINVAL;
	*v = x;
	return 0;
}

int fsr_read_u64(const char *path, uint64_t *v)
{
	char buf[64];
	int n = fsr_read(path, buf, sizeof(buf));

	if (n < 0)
		return n;
	return fsr_parse_u64(buf, v);
}

int fsr_read_i64(const char *path, int64_t *v)
{
	char buf[64], *end, *s = buf;
	int n = fsr_read(path, buf, sizeof(buf));

	if (n < 0)
		return n;
	while (*s == ' ')
		s++;
	errno = 0;
	long long x = strtoll(s, &end, 10);
	if (errno || end == s)
		return -EINVAL;
	while (*end == ' ' || *end == '\n')
		end++;
	if (*end)
		return -EINVAL;
	*v = x;
	return 0;
}

int fsr_read_line(const char *path, char *buf, size_t len)
{
	int n = fsr_read(path, buf, len);

	if (n < 0)
		return n;
	buf[strcspn(buf, "\n")] = 0;
	return 0;
}

int fsr_kv_u64(const char *text, const char *key, uint64_t *v)
{
	size_t kl = strlen(key);
	const char *p = text;

	while (p && *p) {
		if (!strncmp(p, key, kl) && (p[kl] == ' ' || p[kl] == '\t')) {
			char tok[32];
			size_t i = 0;
			p += kl;
			while (*p == ' ' || *p == '\t')
				p++;
			while (*p && *p != '\n' && i < sizeof(tok) - 1)
				tok[i++] = *p++;
			tok[i] = 0;
			return fsr_parse_u64(tok, v);
		}
		p = strchr(p, '\n');
		if (p)
			p++;
	}
	return -ENOENT;
}

int fsr_cpulist(const char *text, uint64_t *mask)
{
	const char *p = text;

	*mask = 0;
	while (*p == ' ')
		p++;
	if (*p == '\n' || !*p)
		return 0; /* empty list */
	while (*p) {
		char *end;
		if (!isdigit((unsigned char)*p))
			return -EINVAL;
		unsigned long a = strtoul(p, &end, 10), b = a;
		p = end;
		if (*p == '-') {
			p++;
			if (!isdigit((unsigned char)*p))
				return -EINVAL;
			b = strtoul(p, &end, 10);
			p = end;
		}
		if (b < a || b > 4095)
			return -EINVAL;
		for (unsigned long c = a; c <= b && c < 64; c++)
			*mask |= 1ULL << c;
		if (*p == ',') {
			p++;
			continue;
		}
		while (*p == ' ' || *p == '\n')
			p++;
		if (*p)
			return -EINVAL;
	}
	return 0;
}

char *fsr_fmt(char *buf, size_t len, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(buf, len, fmt, ap);
	va_end(ap);
	return buf;
}
