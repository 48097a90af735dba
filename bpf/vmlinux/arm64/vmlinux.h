/*
 * vmlinux.h (arm64 fallback): a minimal CO-RE header for the bpf/ programs, used
 * for cross builds from x86-64 to a Jetson or an RK3588, or on boards whose
 * build host has no /sys/kernel/btf/vmlinux. It declares only the types and
 * fields the programs touch; CO-RE relocates every field access against the
 * board kernel's own BTF at load time. Keep it in step with
 * bpf/vmlinux/x86_64/.
 */
#ifndef __VMLINUX_H__
#define __VMLINUX_H__
/* ---- scalar types ---- */
typedef signed char __s8;
typedef unsigned char __u8;
typedef short __s16;
typedef unsigned short __u16;
typedef int __s32;
typedef unsigned int __u32;
typedef long long __s64;
typedef unsigned long long __u64;
typedef __s8 s8;
typedef __u8 u8;
typedef __s16 s16;
typedef __u16 u16;
typedef __s32 s32;
typedef __u32 u32;
typedef __s64 s64;
typedef __u64 u64;
typedef __u16 __be16;
typedef __u32 __be32;
typedef __u64 __be64;
typedef __u16 __le16;
typedef __u32 __le32;
typedef __u64 __le64;
typedef __u32 __wsum;
typedef _Bool bool;
enum { false = 0, true = 1 };
typedef int pid_t;
typedef unsigned int uid_t;
typedef unsigned int gid_t;
typedef long unsigned int size_t;
typedef long int ssize_t;

/* ---- BPF UAPI constants the programs and libbpf's headers use ---- */
enum bpf_map_type {
	BPF_MAP_TYPE_UNSPEC = 0,
	BPF_MAP_TYPE_HASH = 1,
	BPF_MAP_TYPE_ARRAY = 2,
	BPF_MAP_TYPE_PROG_ARRAY = 3,
	BPF_MAP_TYPE_PERF_EVENT_ARRAY = 4,
	BPF_MAP_TYPE_PERCPU_HASH = 5,
	BPF_MAP_TYPE_PERCPU_ARRAY = 6,
	BPF_MAP_TYPE_STACK_TRACE = 7,
	BPF_MAP_TYPE_CGROUP_ARRAY = 8,
	BPF_MAP_TYPE_LRU_HASH = 9,
	BPF_MAP_TYPE_LRU_PERCPU_HASH = 10,
	BPF_MAP_TYPE_RINGBUF = 27,
	BPF_MAP_TYPE_TASK_STORAGE = 29,
};
enum {
	BPF_ANY = 0,
	BPF_NOEXIST = 1,
	BPF_EXIST = 2,
	BPF_F_LOCK = 4,
};
enum {
	BPF_F_NO_PREALLOC = 1,
	BPF_F_MMAPABLE = 1024,
};
enum {
	BPF_LOCAL_STORAGE_GET_F_CREATE = 1,
};

/*
 * ---- kernel types, CO-RE: only the fields the programs read; offsets are
 * relocated against the running kernel's BTF at load time ----
 */
#pragma clang attribute push (__attribute__((preserve_access_index)), apply_to = record)

typedef struct {
	s64 counter;
} atomic_long_t;

struct percpu_counter {
	s64 count;
};

struct kernfs_node {
	u64 id;
};

struct cgroup {
	struct kernfs_node *kn;
	int level;
	struct cgroup *ancestors[0];
};

struct css_set {
	struct cgroup *dfl_cgrp;
};

struct sched_entity {
	u64 sum_exec_runtime;
	u64 prev_sum_exec_runtime;
};

struct signal_struct {
	short oom_score_adj;
};

struct mm_struct {
	long unsigned int total_vm;
	atomic_long_t pgtables_bytes;
	struct percpu_counter rss_stat[4];
};

struct cpumask {
	long unsigned int bits[1];
};

struct task_struct {
	unsigned int __state;
	unsigned int flags;
	struct sched_entity se;
	struct cpumask cpus_mask;
	int exit_code;
	pid_t pid;
	pid_t tgid;
	struct mm_struct *mm;
	char comm[16];
	struct signal_struct *signal;
	struct css_set *cgroups;
	u64 start_time;
};

struct linux_binprm {
	const char *filename;
};

struct seq_file;

struct bpf_iter_meta {
	struct seq_file *seq;
	u64 session_id;
	u64 seq_num;
};

struct bpf_iter__task {
	struct bpf_iter_meta *meta;
	struct task_struct *task;
};


#pragma clang attribute pop

#pragma clang attribute push (__attribute__((preserve_access_index)), apply_to = record)
struct user_pt_regs {
	u64 regs[31];
	u64 sp;
	u64 pc;
	u64 pstate;
};
struct pt_regs {
	union {
		struct user_pt_regs user_regs;
		struct {
			u64 regs[31];
			u64 sp;
			u64 pc;
			u64 pstate;
		};
	};
	u64 orig_x0;
	s32 syscallno;
};
#pragma clang attribute pop

#endif
