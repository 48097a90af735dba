#!/bin/sh
# tests/vm/run.sh: boot Debian's 6.1 cloud kernels under QEMU (software
# emulation) with the project's integration suite in an initramfs, and fail
# unless every VM ran the suite to the end without a failed test.
#
# For each ARCH=BUILD argument:
#   1. prerequisites: the emulator (qemu-system-x86_64 / qemu-system-aarch64),
#      for arm64 the cross compiler, the kernel (fetch-kernel.sh, apt-get
#      download, cached under $VM_CACHE) and for arm64 the userland packages
#      (mkinitramfs.sh --fetch). One missing is "SKIP: vm-ARCH: reason" (the
#      VM cannot run on this machine: no qemu, no network to Debian's
#      archive), or a FAIL with VM_REQUIRE=1 (make test-vm sets it);
#   2. with VM_MAKE set (make test and make test-vm set it to $(MAKE)):
#      `$VM_MAKE ARCH=ARCH BUILD=BUILD all`; a failed build is a FAIL;
#   3. the initramfs from BUILD (mkinitramfs.sh), then boot it with
#        x86_64: qemu-system-x86_64 -accel tcg,thread=single -cpu max -m 1024 -smp 2, ttyS0
#        arm64:  qemu-system-aarch64 -M virt -cpu max -accel tcg -m 1024 -smp 2, ttyAMA0
#      (-nic none -nographic -no-reboot, panic=-1 so that a panic ends QEMU at
#      once) under a wall-clock limit of $VM_TIMEOUT seconds, keeping the
#      serial console in $VM_CACHE/console-ARCH.log;
#   4. judge the console:
#      - "Kernel panic" or an Oops            -> failed: the kernel died
#      - no "EDGE-VM-DONE rc=N" marker         -> failed: hang/timeout or init died
#      - any "FAIL: " line or rc != 0          -> failed: the test lines are shown
# The guest's PASS:/FAIL:/SKIP: lines are printed with "vm-ARCH: " after the
# tag, then one verdict per VM ("PASS: vm-ARCH: ..." or "FAIL: vm-ARCH: why"),
# so that tests/run.sh counts them like an integration script's; the
# EDGE-VM-FEATURE lines (kernel, BTF, cgroup controllers, which BPF attach
# mode and sources went live) are printed for every VM. Last line:
#   test-vm: N passed, N failed, N skipped
# Exit status: 0 when no VM failed (skipped ones included), 1 otherwise; 2
# for bad usage.
#
# WHY thread=single FOR x86-64: with QEMU 7.2's multi-threaded TCG, 3 of 11
# x86-64 guests stalled on this 2-core host (a soft lockup in
# text_poke_bp's IPI while edgectl detached its BPF programs, an RCU stall, a
# silent freeze), 0 of many with one TCG thread, which is no slower here
# (90-95 s either way, the host has 2 cores). arm64 guests never stalled
# with MTTCG. VM_TCG_X86= (empty) gives MTTCG back.
#
# Usage: run.sh ARCH=BUILD...     e.g. run.sh x86_64=build/vm-x86_64 arm64=build/vm-arm64
# Env: VM_TIMEOUT (s per VM, default 300), VM_CACHE (build/vm), TESTDATA,
#      VM_APPEND (extra kernel arguments, e.g. edge.tests=profile_live,server_api or
#      edge.only=suite), VM_MEM (MiB, 1024), VM_SMP (2), VM_TCG_X86 (-accel tcg
#      options for x86-64, default thread=single), VM_TCG_ARM64 (same for arm64,
#      default none), VM_MAKE (build command, unset: BUILD must be built),
#      VM_REQUIRE (1: a missing prerequisite fails instead of skipping).
set -u
[ $# -ge 1 ] || { echo "usage: run.sh ARCH=BUILD..." >&2; exit 2; }
cd "$(dirname "$0")/../.."
VM_TIMEOUT=${VM_TIMEOUT:-300}
VM_CACHE=${VM_CACHE:-build/vm}
VM_APPEND=${VM_APPEND:-}
VM_MEM=${VM_MEM:-1024}
VM_SMP=${VM_SMP:-2}
VM_TCG_X86=${VM_TCG_X86-thread=single}
VM_TCG_ARM64=${VM_TCG_ARM64:-}
VM_MAKE=${VM_MAKE:-}
VM_REQUIRE=${VM_REQUIRE:-0}
mkdir -p "$VM_CACHE"
failed=""
np=0 nf=0 ns=0
err=$(mktemp)
trap 'rm -f "$err"' EXIT

# verdict lines, counted like a test's
vm_pass() { echo "PASS: vm-$1: $2"; np=$((np + 1)); }
vm_fail() { echo "FAIL: vm-$1: $2"; nf=$((nf + 1)); failed="$failed $1"; }
# a prerequisite this machine lacks: skipped (failed with VM_REQUIRE=1)
vm_unavailable() {
	if [ "$VM_REQUIRE" = 1 ]; then vm_fail "$1" "cannot run: $2"
	else echo "SKIP: vm-$1: cannot run here: $2"; ns=$((ns + 1)); fi
}

for spec in "$@"; do
	arch=${spec%%=*}; build=${spec#*=}
	case "$arch" in
	x86_64) debarch=amd64; qemu=qemu-system-x86_64; console=ttyS0; pkg=qemu-system-x86
		machine="-accel tcg${VM_TCG_X86:+,$VM_TCG_X86} -cpu max" ;;
	arm64) debarch=arm64; qemu=qemu-system-aarch64; console=ttyAMA0; pkg=qemu-system-arm
		machine="-M virt -cpu max,pauth-impdef=on -accel tcg${VM_TCG_ARM64:+,$VM_TCG_ARM64}" ;;
	*) echo "run.sh: $spec: arch must be x86_64 or arm64" >&2; exit 2 ;;
	esac
	echo "== vm $arch: $build"
	t0=$(date +%s)
	# 1. prerequisites
	if ! command -v "$qemu" >/dev/null 2>&1; then
		vm_unavailable "$arch" "$qemu not installed (scripts/setup.sh installs $pkg)"; continue
	fi
	if [ -n "$VM_MAKE" ] && [ "$arch" = arm64 ] && [ "$(uname -m)" != aarch64 ] &&
		! command -v aarch64-linux-gnu-gcc >/dev/null 2>&1; then
		vm_unavailable "$arch" "no cross compiler aarch64-linux-gnu-gcc (scripts/setup.sh installs gcc-aarch64-linux-gnu)"; continue
	fi
	if ! kdir=$(sh tests/vm/fetch-kernel.sh "$debarch" "$VM_CACHE/kernels" 2>"$err"); then
		cat "$err"
		vm_unavailable "$arch" "no kernel: $(grep 'fetch-kernel:' "$err" | tail -n 1)"; continue
	fi
	if ! sh tests/vm/mkinitramfs.sh --fetch "$arch" "$VM_CACHE" 2>"$err"; then
		cat "$err"
		vm_unavailable "$arch" "no userland: $(grep 'mkinitramfs:' "$err" | tail -n 1)"; continue
	fi
	kernel=$(ls "$kdir"/boot/vmlinuz-* | head -n 1)
	# 2. the build
	if [ -n "$VM_MAKE" ]; then
		# shellcheck disable=SC2086 # VM_MAKE is a command line
		if ! $VM_MAKE ARCH="$arch" BUILD="$build" all; then
			vm_fail "$arch" "make ARCH=$arch BUILD=$build all failed"; continue
		fi
	fi
	if [ ! -x "$build/bin/edgectl" ]; then
		vm_fail "$arch" "$build/bin/edgectl: not built (make ARCH=$arch BUILD=$build all)"; continue
	fi
	# 3. initramfs and boot
	initrd=$VM_CACHE/initramfs-$arch.cpio.gz
	if ! sh tests/vm/mkinitramfs.sh "$arch" "$build" "$initrd" "$VM_CACHE"; then
		vm_fail "$arch" "mkinitramfs.sh failed (message above)"; continue
	fi
	log=$VM_CACHE/console-$arch.log
	t1=$(date +%s)
	# shellcheck disable=SC2086
	timeout -k 5 "$VM_TIMEOUT" $qemu $machine -m "$VM_MEM" -smp "$VM_SMP" -nic none -nographic -no-reboot \
		-kernel "$kernel" -initrd "$initrd" \
		-append "console=$console panic=-1 oops=panic softlockup_panic=1 softlockup_all_cpu_backtrace=1 hung_task_panic=1 hung_task_timeout_secs=60 loglevel=4 $VM_APPEND" \
		< /dev/null > "$log" 2>&1
	qrc=$?
	t2=$(date +%s)
	# 4. the verdict. One line per console line; a marker may follow
	# firmware noise on its line
	tr -d '\r' < "$log" | sed 's/^.*\(EDGE-VM-[A-Z]*\)/\1/' > "$log.txt"
	grep -E '^(PASS|FAIL|SKIP): |^== |^!! |^EDGE-VM-|passed, .* failed|^suite: ' "$log.txt" |
		grep -v '^EDGE-VM-HEARTBEAT' | sed -E "s/^(PASS|FAIL|SKIP): /\1: vm-$arch: /"
	np=$((np + $(grep -c '^PASS: ' "$log.txt")))
	ns=$((ns + $(grep -c '^SKIP: ' "$log.txt")))
	gf=$(grep -c '^FAIL: ' "$log.txt")
	nf=$((nf + gf))
	why=""
	if grep -q 'Kernel panic' "$log.txt"; then
		why="kernel panic: $(grep -m1 'Kernel panic' "$log.txt")"
	elif ! grep -q '^EDGE-VM-DONE rc=' "$log.txt"; then
		if [ $qrc -eq 124 ] || [ $qrc -eq 137 ]; then
			why="no EDGE-VM-DONE marker: the VM was still running after ${VM_TIMEOUT}s (hang; last heartbeat at $(grep '^EDGE-VM-HEARTBEAT' "$log.txt" | tail -n 1 | cut -d' ' -f2 | grep . || echo none) s of guest uptime); last lines: $(grep -v '^EDGE-VM-HEARTBEAT' "$log.txt" | tail -n 3 | tr '\n' '|')"
		else
			why="no EDGE-VM-DONE marker (qemu exit $qrc); last lines: $(tail -n 3 "$log.txt" | tr '\n' '|')"
		fi
	else
		rc=$(sed -n 's/^EDGE-VM-DONE rc=\([0-9]*\).*/\1/p' "$log.txt" | tail -n 1)
		nx=$(grep -c '^!! ' "$log.txt")
		[ "$rc" = 0 ] && [ "$gf" -eq 0 ] && [ "$nx" -eq 0 ] || why="suite failed (rc=$rc, $gf FAIL lines, $nx scripts exited non-zero)"
	fi
	echo "vm $arch: boot+suite $((t2 - t1)) s, with kernel, build and initramfs $((t2 - t0)) s; console in $log"
	if [ -n "$why" ]; then
		# the console (its last 150 lines but the passes: what the
		# failing test printed), then the failures again
		echo "---- vm $arch: console ($log), PASS lines left out"
		grep -v '^PASS: ' "$log.txt" | tail -n 150 | sed "s/^/  $arch| /"
		echo "----"
		vm_fail "$arch" "$why"
		grep -E '^(FAIL: |!! )' "$log.txt" | sed "s/^/  $arch /"
	else
		vm_pass "$arch" "the suite ran to the end in $((t2 - t1)) s ($(grep -c '^PASS: ' "$log.txt") passed, $(grep -c '^SKIP: ' "$log.txt") skipped)"
	fi
done
[ -z "$failed" ] || echo "test-vm: failed:$failed"
echo "test-vm: $np passed, $nf failed, $ns skipped"
[ -z "$failed" ]
