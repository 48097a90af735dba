#!/bin/sh
# tests/vm/run.sh: boot Debian's 6.1 cloud kernels under QEMU (software
# emulation) with the project's integration suite in an initramfs, and fail
# unless every VM ran the suite to the end without a failed test.
#
# For each ARCH=BUILD argument: fetch the kernel (fetch-kernel.sh, cached under
# $VM_CACHE), build the initramfs from BUILD (mkinitramfs.sh), boot it with
#   x86_64: qemu-system-x86_64 -accel tcg -cpu max -m 1024 -smp 2, console ttyS0
#   arm64:  qemu-system-aarch64 -M virt -cpu max -accel tcg -m 1024 -smp 2, ttyAMA0
# (-nographic -no-reboot, panic=-1 so that a panic ends QEMU at once) under a
# wall-clock limit of $VM_TIMEOUT seconds, and keep the serial console in
# $VM_CACHE/console-ARCH.log. The console is then judged:
#   - "Kernel panic" or an Oops            -> failed: the kernel died
#   - no "EDGE-VM-DONE rc=N" marker         -> failed: hang/timeout or init died
#   - any "FAIL: " line or rc != 0          -> failed: the test lines are shown
# The EDGE-VM-FEATURE lines (kernel, BTF, cgroup controllers, which BPF
# attach mode and sources went live) and the counts are printed for every VM.
# Exit status: 0 when every VM passed, 1 otherwise; 2 for bad usage.
#
# Usage: run.sh ARCH=BUILD...     e.g. run.sh x86_64=build/vm-x86_64 arm64=build/vm-arm64
# Env: VM_TIMEOUT (s per VM, default 300), VM_CACHE (build/vm), TESTDATA,
#      VM_APPEND (extra kernel arguments, e.g. edge.tests=profile_live,server_api or
#      edge.only=suite), VM_MEM (MiB, 1024), VM_SMP (2), VM_TCG_X86 (extra
#      -accel tcg options for x86-64, e.g. thread=single: see docs/platforms.md).
set -u
[ $# -ge 1 ] || { echo "usage: run.sh ARCH=BUILD..." >&2; exit 2; }
cd "$(dirname "$0")/../.."
VM_TIMEOUT=${VM_TIMEOUT:-300}
VM_CACHE=${VM_CACHE:-build/vm}
VM_APPEND=${VM_APPEND:-}
VM_MEM=${VM_MEM:-1024}
VM_SMP=${VM_SMP:-2}
mkdir -p "$VM_CACHE"
failed=""

for spec in "$@"; do
	arch=${spec%%=*}; build=${spec#*=}
	case "$arch" in
	x86_64) debarch=amd64; qemu=qemu-system-x86_64; console=ttyS0
		machine="-accel tcg${VM_TCG_X86:+,$VM_TCG_X86} -cpu max" ;;
	arm64) debarch=arm64; qemu=qemu-system-aarch64; console=ttyAMA0
		machine="-M virt -cpu max,pauth-impdef=on -accel tcg" ;;
	*) echo "run.sh: $spec: arch must be x86_64 or arm64" >&2; exit 2 ;;
	esac
	[ -x "$build/bin/edgectl" ] || { echo "run.sh: $build/bin/edgectl: not built (make ARCH=$arch BUILD=$build all)" >&2; exit 2; }
	echo "== vm $arch: $build"
	t0=$(date +%s)
	if ! kdir=$(sh tests/vm/fetch-kernel.sh "$debarch" "$VM_CACHE/kernels"); then
		failed="$failed $arch(kernel fetch)"; continue
	fi
	kernel=$(ls "$kdir"/boot/vmlinuz-* | head -n 1)
	initrd=$VM_CACHE/initramfs-$arch.cpio.gz
	if ! sh tests/vm/mkinitramfs.sh "$arch" "$build" "$initrd" "$VM_CACHE"; then
		failed="$failed $arch(initramfs)"; continue
	fi
	log=$VM_CACHE/console-$arch.log
	t1=$(date +%s)
	# shellcheck disable=SC2086
	timeout -k 5 "$VM_TIMEOUT" $qemu $machine -m "$VM_MEM" -smp "$VM_SMP" -nographic -no-reboot \
		-kernel "$kernel" -initrd "$initrd" \
		-append "console=$console panic=-1 oops=panic softlockup_panic=1 softlockup_all_cpu_backtrace=1 hung_task_panic=1 hung_task_timeout_secs=60 loglevel=4 $VM_APPEND" \
		< /dev/null > "$log" 2>&1
	qrc=$?
	t2=$(date +%s)
	# one line per console line; a marker may follow firmware noise on its line
	tr -d '\r' < "$log" | sed 's/^.*\(EDGE-VM-[A-Z]*\)/\1/' > "$log.txt"
	grep -E '^(PASS|FAIL|SKIP): |^== |^!! |^EDGE-VM-|passed, .* failed|^suite: ' "$log.txt" | grep -v '^EDGE-VM-HEARTBEAT'
	why=""
	if grep -q 'Kernel panic' "$log.txt"; then
		why="kernel panic: $(grep -m1 'Kernel panic' "$log.txt")"
	elif ! grep -q '^EDGE-VM-DONE rc=' "$log.txt"; then
		if [ $qrc -eq 124 ] || [ $qrc -eq 137 ]; then
			why="no EDGE-VM-DONE marker: the VM was still running after ${VM_TIMEOUT}s (hang; last heartbeat: $(grep '^EDGE-VM-HEARTBEAT' "$log.txt" | tail -n 1 | cut -d' ' -f2)s of guest uptime); last lines: $(grep -v '^EDGE-VM-HEARTBEAT' "$log.txt" | tail -n 3 | tr '\n' '|')"
		else
			why="no EDGE-VM-DONE marker (qemu exit $qrc); last lines: $(tail -n 3 "$log.txt" | tr '\n' '|')"
		fi
	else
		rc=$(sed -n 's/^EDGE-VM-DONE rc=\([0-9]*\).*/\1/p' "$log.txt" | tail -n 1)
		nf=$(grep -c '^FAIL: ' "$log.txt")
		nx=$(grep -c '^!! ' "$log.txt")
		[ "$rc" = 0 ] && [ "$nf" -eq 0 ] && [ "$nx" -eq 0 ] || why="suite failed (rc=$rc, $nf FAIL lines, $nx scripts exited non-zero)"
	fi
	echo "vm $arch: boot+suite $((t2 - t1)) s, with kernel and initramfs $((t2 - t0)) s; console in $log"
	if [ -n "$why" ]; then
		echo "vm $arch: FAILED: $why"
		grep -E '^(FAIL: |!! )' "$log.txt" | sed "s/^/  $arch /"
		failed="$failed $arch"
	else
		echo "vm $arch: passed"
	fi
done
if [ -n "$failed" ]; then echo "test-vm: failed:$failed"; exit 1; fi
echo "test-vm: all VMs passed"
