/*
 * filter.bpf.h: the target filter both BPF programs apply (BPF side only).
 *
 * The including program defines the rodata filter_mode / target_cgid /
 * target_level and the map target_pids (bitmap of tgids), then calls
 * task_is_target(). NONE: every task but the idle task; PIDS: the task's tgid
 * is in target_pids; CGROUP: the task's cgroup v2 ancestor at target_level
 * has id target_cgid (the cgroup itself or a descendant). target_pids is a
 * bitmap (ARRAY of u64 words) of tgids. `btf` selects
 * direct loads (tp_btf programs) or BPF_CORE_READ (raw_tp programs).
 */
#ifndef BPF_FILTER_BPF_H
#define BPF_FILTER_BPF_H

static __always_inline bool cgroup_match(struct cgroup *cg, bool btf)
{
	struct cgroup *anc;
	int level;

	if (!cg)
		return false;
	level = btf ? cg->level : BPF_CORE_READ(cg, level);
	if (level < target_level)
		return false;
	/* ancestors[] is a flexible array at the end of struct cgroup: the
	 * verifier refuses a direct (tp_btf) load past the struct's BTF size
	 * ("struct cgroup doesn't have field at offset 2232": the programs did
	 * not load in cgroup mode), so it is read with a probe read in both
	 * modes, and the ancestor it yields (an untrusted pointer) likewise */
	if (bpf_core_field_exists(cg->ancestors))
		anc = BPF_CORE_READ(cg, ancestors[target_level & 0xff]);
	else
		anc = level == target_level ? cg : NULL;
	if (!anc)
		return false;
	return BPF_CORE_READ(anc, kn, id) == target_cgid;
}

static __always_inline bool task_is_target(struct task_struct *t, __u32 pid, __u32 tgid, bool btf)
{
	if (pid == 0)
		return false;
	if (filter_mode == ST_FILTER_NONE)
		return true;
	if (filter_mode == ST_FILTER_PIDS) {
		__u32 word = tgid >> 6;
		__u64 *w = bpf_map_lookup_elem(&target_pids, &word);
		return w && ((*w >> (tgid & 63)) & 1);
	}
	struct cgroup *cg = btf ? t->cgroups->dfl_cgrp : BPF_CORE_READ(t, cgroups, dfl_cgrp);
	return cgroup_match(cg, btf);
}

#endif
