#!/bin/bash
# controller_tune.sh: edgectl tune / revert end to end.
#  - bad input: one clear line, exit 2, nothing applied, no state, no cgroup left;
#  - live cgroup v1 (root): tune --apply on a spinner sets exactly the quota and
#    CPUs it printed; revert restores membership, affinity and cgroup files byte
#    for byte; the same after a kill -9 of edgectl in the middle of --apply;
#  - live cgroup v2 (in the VM): controllers enabled in a pre-existing
#    ancestor's subtree_control are turned off again by revert, byte for byte;
#  - cgroup v2 through the same code on the fixture tree (EDGE_SYSROOT).
. tests/lib.sh
E=$BIN/edgectl
FIX=tests/fixtures/cgroup-v2
export EDGECTL_STATE=$TMP/state.json
CPU=/sys/fs/cgroup/cpu
CPUSET=/sys/fs/cgroup/cpuset
SPIN=() ; OURCG=()

cleanup() {
	for p in "${SPIN[@]}"; do kill -9 "$p" 2>/dev/null; done
	[ -f "$EDGECTL_STATE" ] && "$E" revert --quiet >/dev/null 2>&1
	for d in "${OURCG[@]}"; do
		[ -d "$d" ] || continue
		while read -r p; do echo "$p" > "$(dirname "$d")/cgroup.procs" 2>/dev/null; done < "$d/cgroup.procs"
		rmdir "$d" 2>/dev/null
	done
	for p in "${SPIN[@]}"; do rmdir "$CPU/edgectl/tune-$p" 2>/dev/null; done
	rmdir "$CPU/edgectl" 2>/dev/null
	rm -rf "$TMP"
}
trap cleanup EXIT

# start a busy process; its pid in P (not through $(...): the child would hold the pipe)
spinner() { bash -c 'while :; do :; done' >/dev/null 2>&1 & P=$!; disown "$P"; SPIN+=("$P"); }

# snapshot of a process: its cgroups, each thread's affinity
proc_state() { cat /proc/$1/cgroup; for t in /proc/$1/task/*; do grep Cpus_allowed_list "$t/status"; done; }

no_trace() { # NAME: nothing applied, no state, no cgroup
	if [ -e "$EDGECTL_STATE" ]; then fail "$1" "state file left behind"; return; fi
	if [ -d "$CPU/edgectl" ]; then fail "$1" "cgroup $CPU/edgectl left behind"; return; fi
	pass "$1"
}

bad() { # NAME WANT_SUBSTRING ARGS...
	n=$1; want=$2; shift 2
	"$E" "$@" >"$TMP/out" 2>"$TMP/err"; rc=$?
	if [ $rc -ne 2 ]; then fail "$n" "exit $rc, want 2; stderr: $(cat "$TMP/err")"; return; fi
	if [ "$(wc -l < "$TMP/err")" -ne 1 ] || ! grep -q -- "$want" "$TMP/err"; then
		fail "$n" "stderr '$(cat "$TMP/err")' lacks '$want'"; return; fi
	no_trace "$n"
}

# ---- bad input (also as non-root: nothing is applied before validation) ----
if [ "$(id -u)" -ne 0 ] || [ ! -d "$CPU" ]; then
	skip "bad input" "needs root and the cgroup v1 cpu controller (live tests)"
else
	spinner
	bad "unknown pid" "pid 4000000: no such process" tune --pid 4000000 --apply --duration 0.3s
	bad "pid not a number" "not a process id" tune --pid abc --apply
	bad "cgroup outside the hierarchy" "outside the cgroup hierarchy" tune --cgroup ../../etc --apply --duration 0.3s
	bad "cgroup path escaping the mount" "outside the cgroup hierarchy" tune --cgroup $CPU/../../../etc --apply
	bad "cgroup that does not exist" "no such cgroup" tune --cgroup /no/such/cgroup --apply
	bad "quota below 1 ms" "below the kernel's minimum of 1000 us (1 ms)" tune --pid "$P" --quota 0.5% --apply --duration 0.3s
	bad "quota below 1 ms in us" "below the kernel's minimum" tune --pid "$P" --quota 999 --apply --duration 0.3s
	bad "empty CPU list" "CPU list '': empty" tune --pid "$P" --cpus "" --apply --duration 0.3s
	bad "offline CPU" "CPU 63 is not online" tune --pid "$P" --cpus 0,63 --apply --duration 0.3s
	bad "malformed CPU list" "malformed" tune --pid "$P" --cpus 0-x --apply --duration 0.3s
	printf '[tune]\nheadrom = 10\n' > "$TMP/typo.ini"
	bad "config key with a typo" "typo.ini:2: unknown key 'headrom' in \[tune\]" tune --pid "$P" --config "$TMP/typo.ini" --apply
	bad "both --pid and --cgroup" "exactly one of" tune --pid "$P" --cgroup /x
	expect_status "revert with nothing to revert" 0 "$E" revert
	echo '{"version": 7}' > "$TMP/bad.json"
	expect_status "revert of a foreign state file" 2 "$E" revert --state "$TMP/bad.json"
	kill -9 "$P"
fi

# ---- live v1: tune --apply on a spinner, then revert ----
if [ "$(id -u)" -ne 0 ] || ! grep -q ' cgroup cgroup .*cpu' /proc/self/mountinfo; then
	skip "live v1 tune" "needs root and the cpu controller on cgroup v1"
else
	spinner
	sleep 0.3
	proc_state "$P" > "$TMP/before"
	if "$E" tune --pid "$P" --duration 2s --apply > "$TMP/plan" 2> "$TMP/err"; then
		cpus=$(sed -n 's/^cpus: //p' "$TMP/plan")
		q=$(sed -n 's/^cpu.max: \([0-9-]*\) \([0-9]*\).*/\1/p' "$TMP/plan")
		per=$(sed -n 's/^cpu.max: \([0-9-]*\) \([0-9]*\).*/\2/p' "$TMP/plan")
		w=$(sed -n 's/^weight: \([0-9]*\).*/\1/p' "$TMP/plan")
		G=$CPU/edgectl/tune-$P
		got_q=$(cat "$G/cpu.cfs_quota_us"); got_p=$(cat "$G/cpu.cfs_period_us"); got_sh=$(cat "$G/cpu.shares")
		got_cpus=$(sed -n 's/^Cpus_allowed_list:\t//p' /proc/$P/status)
		echo "plan: cpus=$cpus quota=$q period=$per weight=$w; kernel: quota=$got_q period=$got_p shares=$got_sh cpus=$got_cpus"
		if [ -n "$q" ] && [ "$got_q" = "$q" ] && [ "$got_p" = "$per" ]; then pass "tune --apply sets the printed quota"
		else fail "tune --apply sets the printed quota" "printed $q $per, kernel $got_q $got_p"; fi
		if [ -n "$cpus" ] && [ "$got_cpus" = "$cpus" ]; then pass "tune --apply sets the printed CPUs"
		else fail "tune --apply sets the printed CPUs" "printed '$cpus', thread has '$got_cpus'"; fi
		if [ "$got_sh" = "$(( (w * 1024 + 50) / 100 ))" ]; then pass "weight as v1 shares"
		else fail "weight as v1 shares" "weight $w, shares $got_sh"; fi
		grep -q "^1:cpu:/edgectl/tune-$P\$\|:cpu:/edgectl/tune-$P\$" /proc/$P/cgroup && pass "whole process moved into its cgroup" \
			|| fail "whole process moved into its cgroup" "$(cat /proc/$P/cgroup | grep cpu)"
		"$E" revert > "$TMP/rev" 2>&1 || fail "revert" "$(cat "$TMP/rev")"
		proc_state "$P" > "$TMP/after"
		if cmp -s "$TMP/before" "$TMP/after"; then pass "revert restores membership and affinity byte for byte"
		else fail "revert restores membership and affinity byte for byte" "$(diff "$TMP/before" "$TMP/after" | tr '\n' ' ')"; fi
		[ ! -d "$CPU/edgectl" ] && pass "revert removes the cgroups it made" || fail "revert removes the cgroups it made" "$CPU/edgectl exists"
		[ ! -e "$EDGECTL_STATE" ] && pass "state removed after revert" || fail "state removed after revert" "still there"
	else
		fail "tune --apply on a spinner" "$(cat "$TMP/err")"
	fi

	# --cgroup on a live v1 cgroup (cpu + cpuset) that the test owns: files back byte for byte
	C=edgectl-itest-$$
	mkdir "$CPU/$C" "$CPUSET/$C" && OURCG+=("$CPU/$C" "$CPUSET/$C")
	cat "$CPUSET/cpuset.cpus" > "$CPUSET/$C/cpuset.cpus"; cat "$CPUSET/cpuset.mems" > "$CPUSET/$C/cpuset.mems"
	echo 50000 > "$CPU/$C/cpu.cfs_quota_us"; echo 512 > "$CPU/$C/cpu.shares"
	echo "$P" > "$CPU/$C/cgroup.procs"; echo "$P" > "$CPUSET/$C/cgroup.procs"
	files="$CPU/$C/cpu.cfs_quota_us $CPU/$C/cpu.cfs_period_us $CPU/$C/cpu.shares $CPUSET/$C/cpuset.cpus"
	cat $files > "$TMP/cg_before"; proc_state "$P" > "$TMP/before"
	if "$E" tune --cgroup "/$C" --duration 1s --apply --quota 35% > "$TMP/plan" 2> "$TMP/err"; then
		[ "$(cat "$CPU/$C/cpu.cfs_quota_us") $(cat "$CPU/$C/cpu.cfs_period_us")" = "35000 100000" ] \
			&& pass "CPUQuota=35% is 35000 100000 (v1 cfs files)" || fail "CPUQuota=35% is 35000 100000 (v1 cfs files)" "$(cat $files | tr '\n' ' ')"
		cpus=$(sed -n 's/^cpus: //p' "$TMP/plan")
		[ "$(cat "$CPUSET/$C/cpuset.cpus")" = "$cpus" ] && pass "cgroup's cpuset.cpus set to the printed CPUs" \
			|| fail "cgroup's cpuset.cpus set to the printed CPUs" "printed $cpus, file $(cat "$CPUSET/$C/cpuset.cpus")"
		"$E" revert > "$TMP/rev" 2>&1 || fail "revert (cgroup)" "$(cat "$TMP/rev")"
		cat $files > "$TMP/cg_after"; proc_state "$P" > "$TMP/after"
		cmp -s "$TMP/cg_before" "$TMP/cg_after" && pass "revert restores cgroup files byte for byte" \
			|| fail "revert restores cgroup files byte for byte" "$(diff "$TMP/cg_before" "$TMP/cg_after" | tr '\n' ' ')"
		cmp -s "$TMP/before" "$TMP/after" && pass "revert restores thread affinity after a cpuset write" \
			|| fail "revert restores thread affinity after a cpuset write" "$(diff "$TMP/before" "$TMP/after" | tr '\n' ' ')"
	else
		fail "tune --cgroup --apply" "$(cat "$TMP/err")"
	fi
	echo "$P" > "$CPU/cgroup.procs"; echo "$P" > "$CPUSET/cgroup.procs"
	rmdir "$CPU/$C" "$CPUSET/$C"

	# kill -9 in the middle of --apply, then revert
	proc_state "$P" > "$TMP/before"
	EDGECTL_TEST_STEP_DELAY_MS=800 "$E" tune --pid "$P" --duration 0.5s --apply --quota 20% > "$TMP/plan" 2>&1 &
	T=$!
	for _ in $(seq 50); do [ -e "$EDGECTL_STATE" ] && break; sleep 0.1; done
	sleep 1.2 # state written; the cgroup made and the process moved; quota not yet all set
	kill -9 "$T" 2>/dev/null; wait "$T" 2>/dev/null
	proc_state "$P" > "$TMP/mid"
	if cmp -s "$TMP/before" "$TMP/mid"; then fail "kill -9 mid-apply left a half-applied state" "nothing had been applied yet"
	else pass "kill -9 mid-apply left a half-applied state"; fi
	if "$E" revert > "$TMP/rev" 2>&1; then
		proc_state "$P" > "$TMP/after"
		cmp -s "$TMP/before" "$TMP/after" && pass "revert after kill -9 restores byte for byte" \
			|| fail "revert after kill -9 restores byte for byte" "$(diff "$TMP/before" "$TMP/after" | tr '\n' ' ')"
		[ ! -d "$CPU/edgectl" ] && pass "no cgroup left after kill -9 + revert" || fail "no cgroup left after kill -9 + revert" "$CPU/edgectl"
	else
		fail "revert after kill -9" "$(cat "$TMP/rev")"
	fi
	kill -9 "$P"
fi

# ---- live cgroup v2 (the VM of `make test-vm`): subtree_control of a pre-existing ancestor ----
# /edgectl made by the test (a fresh v2 cgroup enables nothing for its children):
# tune --pid must enable cpu there (and at the root if it lacks it) before making
# /edgectl/tune-PID, and revert must turn off exactly that; a controller a child
# cgroup of someone else now uses stays on (the kernel says EBUSY), logged.
V2=/sys/fs/cgroup
# (the mount table, not stat -f: busybox's stat, in the VM, names cgroup2 UNKNOWN)
if [ "$(id -u)" -ne 0 ] || ! awk -v m=$V2 '$5 == m && / - cgroup2 / { f = 1 } END { exit !f }' /proc/self/mountinfo \
	|| ! grep -qw cpu $V2/cgroup.controllers \
	|| [ -e $V2/edgectl ]; then
	skip "live v2 subtree_control" "needs root and a cgroup v2 hierarchy at $V2 with the cpu controller (make test-vm)"
else
	cat $V2/cgroup.subtree_control > "$TMP/root_sub"
	mkdir $V2/edgectl && OURCG+=($V2/edgectl)
	cat $V2/edgectl/cgroup.subtree_control > "$TMP/e_sub"
	spinner
	sleep 0.3
	if "$E" tune --pid "$P" --duration 1s --apply --quota 30% > "$TMP/plan" 2> "$TMP/err"; then
		grep -qw cpu $V2/edgectl/cgroup.subtree_control && grep -qw cpu $V2/cgroup.subtree_control \
			&& pass "v2 live: cpu enabled in the ancestors' subtree_control" \
			|| fail "v2 live: cpu enabled in the ancestors' subtree_control" "root '$(cat $V2/cgroup.subtree_control)', /edgectl '$(cat $V2/edgectl/cgroup.subtree_control)'"
		[ "$(cat $V2/edgectl/tune-$P/cpu.max 2>&1)" = "30000 100000" ] && pass "v2 live: tune-PID has cpu.max 30000 100000" \
			|| fail "v2 live: tune-PID has cpu.max 30000 100000" "$(cat $V2/edgectl/tune-$P/cpu.max 2>&1)"
		"$E" revert > "$TMP/rev" 2>&1 || fail "v2 live: revert" "$(cat "$TMP/rev")"
		[ ! -d $V2/edgectl/tune-$P ] && cmp -s "$TMP/e_sub" $V2/edgectl/cgroup.subtree_control && cmp -s "$TMP/root_sub" $V2/cgroup.subtree_control \
			&& pass "v2 live: revert removes tune-PID and restores both subtree_control files byte for byte" \
			|| fail "v2 live: revert restores subtree_control" "root '$(cat $V2/cgroup.subtree_control)' was '$(cat "$TMP/root_sub")', /edgectl '$(cat $V2/edgectl/cgroup.subtree_control)' was '$(cat "$TMP/e_sub")'"
	else
		fail "v2 live: tune --pid --apply under a pre-existing /edgectl" "$(tail -n 1 "$TMP/err")"
	fi
	# someone else's child now uses cpu below /edgectl: revert logs EBUSY and still succeeds
	if "$E" tune --pid "$P" --duration 1s --apply --quota 30% > "$TMP/plan" 2> "$TMP/err"; then
		mkdir $V2/edgectl/other && OURCG=($V2/edgectl/other "${OURCG[@]}")
		echo +cpu > $V2/edgectl/other/cgroup.subtree_control
		if "$E" revert > "$TMP/rev" 2>&1 && grep -q "left enabled" "$TMP/rev" && [ ! -e "$EDGECTL_STATE" ]; then
			pass "v2 live: revert with the controller in use below: logged, not a failure"
		else
			fail "v2 live: revert with the controller in use below" "$(tr '\n' ' ' < "$TMP/rev")"
		fi
		echo -cpu > $V2/edgectl/other/cgroup.subtree_control; rmdir $V2/edgectl/other
	else
		fail "v2 live: second tune --pid --apply" "$(tail -n 1 "$TMP/err")"
	fi
	kill -9 "$P"
	for c in $(cat $V2/edgectl/cgroup.subtree_control); do echo "-$c" > $V2/edgectl/cgroup.subtree_control; done
	rmdir $V2/edgectl
fi

# ---- cgroup v2 on the fixture tree, same code paths ----
R=$TMP/v2root
cp -a "$FIX" "$R"
if EDGE_SYSROOT=$R "$E" tune --cgroup /edge.slice/core --duration 0.3s --apply --emit systemd --state "$TMP/v2.json" > "$TMP/plan" 2> "$TMP/err"; then
	q=$(sed -n 's/^cpu.max: \([0-9-]*\) \([0-9]*\).*/\1 \2/p' "$TMP/plan")
	cpus=$(sed -n 's/^cpus: //p' "$TMP/plan")
	[ "$(cat "$R/sys/fs/cgroup/edge.slice/core/cpu.max")" = "$q" ] && pass "v2 fixture: cpu.max set as printed" \
		|| fail "v2 fixture: cpu.max set as printed" "printed '$q', file '$(cat "$R/sys/fs/cgroup/edge.slice/core/cpu.max")'"
	[ "$(cat "$R/sys/fs/cgroup/edge.slice/core/cpuset.cpus")" = "$cpus" ] && pass "v2 fixture: cpuset.cpus set as printed" \
		|| fail "v2 fixture: cpuset.cpus set as printed" "printed '$cpus'"
	[ "$cpus" = 4 ] && pass "v2 fixture: a big core (capacity 1024) chosen" || fail "v2 fixture: a big core (capacity 1024) chosen" "chose $cpus"
	grep -q "^AllowedCPUs=$cpus\$" "$TMP/plan" && grep -q '^CPUQuota=5%$' "$TMP/plan" && grep -q '^CPUWeight=100$' "$TMP/plan" \
		&& pass "v2 fixture: systemd drop-in with AllowedCPUs" || fail "v2 fixture: systemd drop-in with AllowedCPUs" "$(cat "$TMP/plan")"
	EDGE_SYSROOT=$R "$E" revert --state "$TMP/v2.json" > "$TMP/rev" 2>&1 || fail "v2 fixture: revert" "$(cat "$TMP/rev")"
	diff -r "$FIX" "$R" > "$TMP/diff" && pass "v2 fixture: revert restores every file byte for byte" \
		|| fail "v2 fixture: revert restores every file byte for byte" "$(head -c 300 "$TMP/diff")"
else
	fail "v2 fixture: tune --apply" "$(cat "$TMP/err")"
fi
EDGE_SYSROOT=$R "$E" tune --cgroup /edge.slice/hog --duration 0.2s --quota 35% --apply --state "$TMP/v2.json" > /dev/null 2>&1
[ "$(cat "$R/sys/fs/cgroup/edge.slice/hog/cpu.max")" = "35000 100000" ] && pass "v2 fixture: CPUQuota=35% is \"35000 100000\"" \
	|| fail "v2 fixture: CPUQuota=35% is \"35000 100000\"" "$(cat "$R/sys/fs/cgroup/edge.slice/hog/cpu.max")"
EDGE_SYSROOT=$R "$E" revert --quiet --state "$TMP/v2.json"
EDGE_SYSROOT=$R bad "v2 fixture: offline CPU" "CPU 8 is not online (online: 0-7)" tune --cgroup /edge.slice/core --cpus 8-9 --apply --state "$TMP/v2.json"
finish
