#!/bin/sh
# tests/run.sh: run the unit tests (cmocka programs under $BUILD/tests) and the
# integration tests (tests/integration/*.sh, which drive the real binaries),
# count every test case, and close with one line "N passed, N failed, N skipped".
# Exit status: 0 when nothing failed, 1 otherwise.
#
# With RUN_VM=1 (make test sets it: tests/vm/module.mk), `all` ends with the
# VM suite: tests/vm/run.sh $VM_SPECS boots Debian's kernels under QEMU; its
# PASS:/FAIL:/SKIP: lines (a VM that cannot run here is a SKIP with the
# reason) count like an integration script's. `vm` runs that part alone.
#
# Usage: run.sh all|unit|integration|vm [FILTER]   (FILTER: substring of a name)
# Env: BUILD (build dir), TESTDATA (../shared/testdata), TEST_TIMEOUT (s per program),
#      TEST_WRAPPER (a command that unit-test programs run under, e.g.
#      qemu-aarch64-static for an ARCH=arm64 build on x86-64; tests/vm/module.mk sets it)
set -u
what=${1:-all}
filter=${2:-}
: "${BUILD:?BUILD must name the build directory}"
TESTDATA=${TESTDATA:-$(cd "$(dirname "$0")/../.." && pwd)/shared/testdata}
TEST_TIMEOUT=${TEST_TIMEOUT:-600}
TEST_WRAPPER=${TEST_WRAPPER:-}
export BUILD TESTDATA CMOCKA_MESSAGE_OUTPUT=stdout
BUILD=$(cd "$BUILD" && pwd)
export BUILD

passed=0 failed=0 skipped=0
failures=""
log=$(mktemp)
trap 'rm -f "$log"' EXIT

note_fail() { failures="$failures
  $1"; }

run_unit() {
	t=$1; name=${t#"$BUILD"/tests/}
	echo "== unit $name"
	# shellcheck disable=SC2086 # TEST_WRAPPER is a command line
	timeout -k 5 "$TEST_TIMEOUT" $TEST_WRAPPER "$t" >"$log" 2>&1
	rc=$?
	cat "$log"
	p=$(sed -n 's/^\[  PASSED  \] \([0-9]*\) test.*/\1/p' "$log" | awk '{s+=$1} END {print s+0}')
	f=$(sed -n 's/^\[  FAILED  \] \([0-9]*\) test.*/\1/p' "$log" | awk '{s+=$1} END {print s+0}')
	s=$(sed -n 's/^\[  SKIPPED \] \([0-9]*\) test.*/\1/p' "$log" | awk '{s+=$1} END {print s+0}')
	if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then
		f=1; echo "!! $name exited with status $rc"
	fi
	passed=$((passed + p)); failed=$((failed + f)); skipped=$((skipped + s))
	[ "$f" -eq 0 ] || note_fail "unit $name"
}

# count the PASS/FAIL/SKIP lines of $log into the totals; a non-zero exit
# status RC with no FAIL line counts as one failure of WHAT. Sets f.
tally() { # RC WHAT
	p=$(grep -c '^PASS: ' "$log")
	f=$(grep -c '^FAIL: ' "$log")
	s=$(grep -c '^SKIP: ' "$log")
	if [ "$1" -ne 0 ] && [ "$f" -eq 0 ]; then
		f=1; echo "!! $2 exited with status $1"
	fi
	passed=$((passed + p)); failed=$((failed + f)); skipped=$((skipped + s))
}

run_integration() {
	t=$1; name=$(basename "$t" .sh)
	echo "== integration $name"
	timeout -k 5 "$TEST_TIMEOUT" bash "$t" >"$log" 2>&1
	rc=$?
	cat "$log"
	tally "$rc" "$name"
	[ "$f" -eq 0 ] || note_fail "integration $name"
}

run_vm() {
	echo "== vm (tests/vm/run.sh $VM_SPECS)"
	# streamed (minutes), its status kept apart from tee's
	# shellcheck disable=SC2086 # VM_SPECS is a list
	{ sh tests/vm/run.sh $VM_SPECS 2>&1; echo $? > "$log.rc"; } | tee "$log"
	rc=$(cat "$log.rc"); rm -f "$log.rc"
	tally "$rc" tests/vm/run.sh
	[ "$f" -eq 0 ] || note_fail "vm: $(grep '^test-vm: failed:' "$log" | sed 's/^test-vm: failed://')"
}

if [ "$what" = all ] || [ "$what" = unit ]; then
	for t in $(find "$BUILD/tests" -type f -name 'test_*' -perm -u+x 2>/dev/null | sort); do
		case "$t" in *"$filter"*) run_unit "$t" ;; esac
	done
fi
if [ "$what" = all ] || [ "$what" = integration ]; then
	for t in $(ls tests/integration/*.sh 2>/dev/null | sort); do
		case "$t" in *"$filter"*) run_integration "$t" ;; esac
	done
fi

if [ "$what" = vm ] || { [ "$what" = all ] && [ "${RUN_VM:-0}" = 1 ] && [ -z "$filter" ]; }; then
	: "${VM_SPECS:?VM_SPECS must name ARCH=BUILD pairs (see tests/vm/module.mk)}"
	run_vm
fi

[ -z "$failures" ] || printf 'failed:%s\n' "$failures"
echo "$passed passed, $failed failed, $skipped skipped"
[ "$failed" -eq 0 ]
