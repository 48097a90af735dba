/*
 * bpfutil.c: helpers shared by the loaders (schedtrace.c, evtrace.c).
 *
 * libbpf prints warnings to stderr by default; a library must not, so the
 * print callback keeps the last warning in a small buffer that loaders copy
 * into their error message when a step fails.
 */
#include "bpf/bpfutil.h"

#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <bpf/bpf.h>
#include <bpf/libbpf.h>

static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;
static char last_log[256];

static int quiet_print(enum libbpf_print_level level, const char *fmt, va_list ap)
{
	char line[256];

	if (level == LIBBPF_DEBUG)
		return 0;
	/* libbpf hands us its own format strings */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wformat-nonliteral"
	vsnprintf(line, sizeof(line), fmt, ap);
#pragma GCC diagnostic pop
	line[strcspn(line, "\n")] = 0;
	if (!line[0])
		return 0;
	pthread_mutex_lock(&log_lock);
	snprintf(last_log, sizeof(last_log), "%s", line);
	pthread_mutex_unlock(&log_lock);
	return 0;
}

void bpfutil_quiet_libbpf(void)
{
	libbpf_set_print(quiet_print);
}

void bpfutil_last_log(char *buf, size_t len)
{
	pthread_mutex_lock(&log_lock);
	snprintf(buf, len, "%s", last_log);
	last_log[0] = 0;
	pthread_mutex_unlock(&log_lock);
}

bool bpfutil_probe_tp_btf(const char *name)
{
	LIBBPF_OPTS(bpf_prog_load_opts, opts, .expected_attach_type = BPF_TRACE_RAW_TP);
	struct bpf_insn insns[] = {
		{ .code = BPF_ALU64 | BPF_MOV | BPF_K, .dst_reg = BPF_REG_0, .imm = 0 },
		{ .code = BPF_JMP | BPF_EXIT },
	};
	int id = libbpf_find_vmlinux_btf_id(name, BPF_TRACE_RAW_TP);
	int fd;

	if (id <= 0)
		return false;
	opts.attach_btf_id = (__u32)id;
	fd = bpf_prog_load(BPF_PROG_TYPE_TRACING, NULL, "GPL", insns, 2, &opts);
	if (fd >= 0)
		close(fd);
	return fd >= 0;
}

int bpfutil_prog_stats(int prog_fd, __u64 *run_time_ns, __u64 *run_cnt)
{
	struct bpf_prog_info info;
	__u32 len = sizeof(info);
	int err;

	memset(&info, 0, sizeof(info));
	err = bpf_obj_get_info_by_fd(prog_fd, &info, &len);
	if (err)
		return -errno;
	*run_time_ns = info.run_time_ns;
	*run_cnt = info.run_cnt;
	return 0;
}

void bpfutil_progs_stats(struct bpf_program *const *progs, size_t n, __u64 *run_time_ns, __u64 *run_cnt)
{
	*run_time_ns = *run_cnt = 0;
	for (size_t i = 0; i < n; i++) {
		__u64 t, c;
		int fd = bpf_program__fd(progs[i]);
		if (fd < 0 || bpfutil_prog_stats(fd, &t, &c))
			continue;
		*run_time_ns += t;
		*run_cnt += c;
	}
}

int bpfutil_btf_path(const char *path, const char **out, char *err, size_t errlen)
{
	const char *p = path && *path ? path : getenv("EDGE_VMLINUX_BTF");
	const char *check = p && *p ? p : "/sys/kernel/btf/vmlinux";

	*out = p && *p ? p : NULL;
	if (access(check, R_OK)) {
		int e = errno;
		snprintf(err, errlen, "kernel BTF %s: %s (CO-RE programs need it)", check, strerror(e));
		return -e;
	}
	return 0;
}
