#!/bin/bash
# profile_fixtures.sh: 'edgectl profile' on the fixture trees (a Jetson Orin
# with JetPack 5 / cgroup v1 and JetPack 6 / cgroup v2, an RK3588), through
# --sysroot: big/LITTLE clusters, temperatures, GPU and NPU loads come out
# exactly as written; malformed or unreadable files are named and the rest
# of the profile is still produced; bad targets and options exit 2 with one
# line. Needs no root and no BPF.
. tests/lib.sh
FIX=tests/fixtures
E=$BIN/edgectl

if ! command -v jq >/dev/null; then
	skip "profile fixtures" "jq not installed (scripts/setup.sh installs it)"
	finish
fi

jqe() { jq -e "$@" >/dev/null; }
snap() { "$E" profile --sysroot "$1" --interval 100ms --count 1 --json "${@:2}" 2>"$TMP/err"; }

# RK3588: 4 x A55 (capacity 414) + 2 x 2 x A76 (1024), Mali load@freq, 3-core NPU
snap $FIX/rk3588 --cgroup /edge/llm > "$TMP/rk.json"
check "rk3588: exit 0 and one JSON line" test "$(wc -l < "$TMP/rk.json")" -eq 1
check "rk3588: clusters LITTLE first" test "$(jq -c '[.topo.cluster[] | [.cpumask, .capacity, .max_khz]]' "$TMP/rk.json")" = \
	'[["0xf",414,1800000],["0x30",1024,2400000],["0xc0",1024,2400000]]'
check "rk3588: cpu 6 in cluster 2 at 2.4 GHz" test "$(jq -c '.topo.cpu[6] | [.cluster, .cur_khz]' "$TMP/rk.json")" = '[2,2400000]'
check "rk3588: temperatures" test "$(jq -c '[.thermal.z[] | [.type, .temp_mc]] | .[1], .[6]' "$TMP/rk.json" | tr -d '\n')" = \
	'["bigcore0-thermal",43437]["npu-thermal",44375]'
check "rk3588: GPU 37% at 800 MHz" test "$(jq -c '.accel.a[0] | [.kind, .name, .load_pct, .cur_freq_hz]' "$TMP/rk.json")" = \
	'["rk-gpu","fb000000.gpu",37,800000000]'
check "rk3588: NPU cores 12/0/40" test "$(jq -c '.accel.a[1] | [.kind, .ncores, .core_pct]' "$TMP/rk.json")" = '["rknpu",3,[12,0,40]]'
check "rk3588: cgroup v2 quota, weight, memory" test "$(jq -c '.cgroup | [.version, .quota_us, .period_us, .weight, .mem_max_bytes, .nr_throttled]' "$TMP/rk.json")" = \
	'["v2",300000,100000,200,"max",250]'
check "rk3588: sources say why BPF is not live" jqe '.sources[] | select(.name=="bpf-sched") | (.live == false) and (.why | test("not the running system"))' "$TMP/rk.json"

# Jetson Orin, JetPack 5: cgroup v1 on a cpu,cpuacct mount; GPU load per-mille
snap $FIX/jetson-orin-jp5 --cgroup /edge/llm > "$TMP/jp5.json"
check "orin jp5: GPU 46.3% (463 per-mille)" test "$(jq -c '.accel.a[0] | [.kind, .name, .load_pct]' "$TMP/jp5.json")" = '["jetson-gpu","17000000.ga10b",46.3]'
check "orin jp5: two clusters of 4" test "$(jq -c '[.topo.cluster[] | .cpumask]' "$TMP/jp5.json")" = '["0xf","0xf0"]'
check "orin jp5: cgroup v1 figures" test "$(jq -c '.cgroup | [.version, .usage_ns, .throttled_ns, .quota_us, .shares, .mem_max_bytes, .mem_events_oom_kill]' "$TMP/jp5.json")" = \
	'["v1",123456789000,3456000000,200000,2048,4294967296,1]'
check "orin jp5: tj-therm 46 C" test "$(jq -c '[.thermal.z[] | select(.type=="tj-therm") | .temp_mc]' "$TMP/jp5.json")" = '[46000]'

# Jetson Orin, JetPack 6: cgroup v2, a pid target finds its cgroup
snap $FIX/jetson-orin-jp6 --pid 4242 > "$TMP/jp6.json"
check "orin jp6: pid target's cgroup v2" test "$(jq -c '[.target.kind, .target.pid, .cgroup.version, .cgroup.path, .cgroup.psi.cpu.some.avg10]' "$TMP/jp6.json")" = \
	'["pid",4242,"v2","/edge/llm",12.5]'
check "orin jp6: GPU 100%" test "$(jq -c '.accel.a[0] | [.name, .load_pct]' "$TMP/jp6.json")" = '["17000000.gpu",100]'

# human view on a fixture
"$E" profile --sysroot $FIX/rk3588 --cgroup /edge/llm --interval 100ms --count 1 > "$TMP/human" 2>&1
check "human view: accelerators line" grep -q 'accel     fb000000.gpu 37.0% @800MHz rknpu 17.3% @1000MHz \[12 0 40\]' "$TMP/human"
check "human view: not-live line" grep -q '^not live: bpf-sched: sysroot' "$TMP/human"

# malformed and unreadable files: named, the rest still produced
cp -a $FIX/rk3588 "$TMP/bad"
echo busy > "$TMP/bad/sys/class/devfreq/fb000000.gpu/load"
echo hot > "$TMP/bad/sys/class/thermal/thermal_zone2/temp"
echo "NPU load: garbage" > "$TMP/bad/sys/kernel/debug/rknpu/load"
rm "$TMP/bad/sys/devices/system/cpu/cpufreq/policy4/scaling_max_freq"
echo "x y z" > "$TMP/bad/proc/pressure/cpu"
expect_status "malformed files: exit 0" 0 "$E" profile --sysroot "$TMP/bad" --cgroup /edge/llm --interval 100ms --count 1
check "malformed: GPU file named" grep -q 'fb000000.gpu: .*fb000000.gpu/load: malformed (want NN@FREQHz)' "$TMP/out"
check "malformed: NPU file named" grep -q 'rknpu: .*rknpu/load: malformed' "$TMP/out"
check "malformed: thermal zone named, others shown" grep -q 'bigcore1-thermal ?.*npu-thermal 44.4C' "$TMP/out"
check "malformed: thermal note" grep -q 'note: .*thermal_zone2/temp: malformed' "$TMP/out"
check "malformed: cpufreq note, clusters kept" grep -q 'note: .*policy4/scaling_max_freq: No such file' "$TMP/out"
check "malformed: PSI cpu bad, memory and io still shown" grep -q '^psi       cpu 0.00/0.00/0.00  mem 0.10' "$TMP/out"
snap "$TMP/bad" --cgroup /edge/llm > "$TMP/bad.json"
check "malformed: JSON names the files" jqe '(.accel.a[0].valid == false) and (.accel.a[0].err | test("malformed")) and (.psi.cpu.valid == false) and (.psi.memory.valid == true)' "$TMP/bad.json"
chmod 000 "$TMP/bad/sys/class/thermal/thermal_zone0/temp"
if [ "$(id -u)" -ne 0 ]; then
	expect_status "unreadable file: exit 0" 0 "$E" profile --sysroot "$TMP/bad" --interval 100ms --count 1
	check "unreadable file: named" grep -q 'Permission denied' "$TMP/out"
else
	skip "unreadable file" "root reads mode-000 files; covered by malformed files"
fi

# bad input: one line, exit 2
expect_status "no such pid: exit 2" 2 "$E" profile --sysroot $FIX/rk3588 --pid 999999 --count 1
check "no such pid: one line" test "$(cat "$TMP/err")" = "edgectl: pid 999999: no such process"
expect_status "no such cgroup: exit 2" 2 "$E" profile --sysroot $FIX/rk3588 --cgroup /nope --count 1
check "no such cgroup: one line" test "$(cat "$TMP/err")" = "edgectl: cgroup /nope: no such cgroup"
expect_status "bad interval: exit 2" 2 "$E" profile --interval 0s --count 1
expect_status "pid and cgroup: exit 2" 2 "$E" profile --pid 1 --cgroup /x
expect_status "bad pid text: exit 2" 2 "$E" profile --pid abc
expect_status "no such sysroot: exit 2" 2 "$E" profile --sysroot /nonexistent/root --count 1
expect_status "help: exit 0" 0 "$E" profile --help
finish
