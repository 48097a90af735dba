#!/bin/busybox sh
# tests/vm/init.sh: /init of the test VM (run by the kernel as pid 1 from the
# initramfs that tests/vm/mkinitramfs.sh builds).
#
# It mounts proc, sysfs, devtmpfs, a tmpfs /tmp, a pure cgroup v2 hierarchy
# at /sys/fs/cgroup with cpu, cpuset, memory and pids enabled for children,
# tracefs, debugfs and bpffs; brings up lo; prints one "EDGE-VM-FEATURE" line
# per kernel feature the suite depends on; runs the project's integration
# scripts (tests/run.sh integration) and the VM's own cgroup v2 suite
# (tests/vm/suite.sh), whose PASS:/FAIL:/SKIP: lines go to the serial
# console; and ends with the marker line
#     EDGE-VM-DONE rc=N
# before powering off. tests/vm/run.sh on the host reads that console log:
# no marker means the VM hung or the kernel died.
# Which integration scripts: the ones that need the kernel (BPF, live
# cgroups, supervise), edge.tests=a,b,c on the kernel command line to choose
# others (names of tests/integration/*.sh, or "all"); edge.only=suite runs
# the v2 suite alone. The kernel-independent scripts (server, gguf, tokenizer)
# run on the host in `make test` and are not repeated here.
/bin/busybox mkdir -p /proc /sys /dev /tmp /run /bin /sbin /usr/bin /usr/sbin
/bin/busybox --install -s
export PATH=/usr/bin:/usr/sbin:/bin:/sbin HOME=/root LANG=C.UTF-8 TERM=dumb
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mkdir -p /dev/pts /dev/shm
mount -t devpts devpts /dev/pts
mount -t tmpfs tmpfs /dev/shm
mount -t tmpfs -o size=256m tmpfs /tmp
mount -t tmpfs tmpfs /run
mount -t cgroup2 cgroup2 /sys/fs/cgroup
echo "+cpu +cpuset +memory +pids" > /sys/fs/cgroup/cgroup.subtree_control
mount -t tracefs tracefs /sys/kernel/tracing 2>/dev/null
mount -t debugfs debugfs /sys/kernel/debug 2>/dev/null
mount -t bpf bpf /sys/fs/bpf
ip link set lo up 2>/dev/null || ifconfig lo 127.0.0.1 up
hostname edge-vm
ulimit -l unlimited 2>/dev/null
ulimit -c 0
echo 1 > /proc/sys/kernel/panic_on_oops

cmdline=$(cat /proc/cmdline)
tests="profile_live,controller_tune,controller_supervise"; only=""
for w in $cmdline; do
	case "$w" in
	edge.tests=*) tests=${w#edge.tests=} ;;
	edge.only=*) only=${w#edge.only=} ;;
	esac
done

feat() { echo "EDGE-VM-FEATURE $1=$2"; }
feat arch "$(cat /etc/edge-arch)"
feat kernel "$(uname -r)"
feat cpus "$(nproc)"
[ -r /sys/kernel/btf/vmlinux ] && feat btf yes || feat btf no
feat cgroup "v2 ($(cat /sys/fs/cgroup/cgroup.controllers))"
feat subtree_control "$(cat /sys/fs/cgroup/cgroup.subtree_control)"
[ -d /sys/kernel/tracing/events/sched ] && feat tracefs yes || feat tracefs no
[ -f /proc/pressure/cpu ] && feat psi yes || feat psi no
src=$(/work/build/bin/edgectl profile --count 1 --interval 300ms --json 2>/tmp/prof.err |
	jq -r '.sources[] | "\(.name):\(.live):\(.why // "")"' 2>/dev/null | tr '\n' ' ')
feat sources "${src:-none ($(head -c 200 /tmp/prof.err))}"

# a heartbeat on the console: when it stops, the whole guest froze (not
# just a test)
( while sleep 30; do echo "EDGE-VM-HEARTBEAT $(cut -d' ' -f1 /proc/uptime)" > /dev/console; done ) &
HB=$!

cd /work
rc=0
export BUILD=/work/build TESTDATA=/work/testdata TEST_TIMEOUT=${TEST_TIMEOUT:-240}
[ -d "$TESTDATA" ] || TESTDATA=
if [ "$only" != suite ]; then
	[ "$tests" = all ] && tests=$(ls tests/integration/*.sh | sed 's|.*/||; s|\.sh$||' | tr '\n' ,)
	# each script straight to the console (not through tests/run.sh, which
	# prints a script's output only when it ends): a hang shows where it is
	for t in $(echo "$tests" | tr , ' '); do
		echo "EDGE-VM-STAGE integration $t $(cut -d' ' -f1 /proc/uptime)"
		if [ ! -f "tests/integration/$t.sh" ]; then
			echo "FAIL: $t: no tests/integration/$t.sh"; rc=1; continue
		fi
		timeout -k 5 "$TEST_TIMEOUT" bash "tests/integration/$t.sh" 2>&1 < /dev/null
		s=$?
		[ $s -eq 0 ] || { echo "!! integration $t exited with status $s"; rc=1; }
	done
fi
echo "EDGE-VM-STAGE suite $(cut -d' ' -f1 /proc/uptime)"
{ timeout -k 5 "$TEST_TIMEOUT" bash tests/vm/suite.sh < /dev/null; echo $? > /tmp/suite.rc; } 2>&1 | tee /tmp/suite.log
src=$(cat /tmp/suite.rc)
grep -q '^FAIL: ' /tmp/suite.log && rc=1
[ $src -eq 0 ] || { echo "!! tests/vm/suite.sh exited with status $src"; rc=1; }
echo "suite: $(grep -c '^PASS: ' /tmp/suite.log) passed, $(grep -c '^FAIL: ' /tmp/suite.log) failed, $(grep -c '^SKIP: ' /tmp/suite.log) skipped"
sync
kill $HB 2>/dev/null
echo "EDGE-VM-STAGE end $(cut -d' ' -f1 /proc/uptime)"
echo "EDGE-VM-DONE rc=$rc"
poweroff -f
sleep 5
echo o > /proc/sysrq-trigger
