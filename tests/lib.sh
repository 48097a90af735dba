# tests/lib.sh: helpers for integration tests (sourced by tests/integration/*.sh).
# A test script reports each check on a line of its own:
#   PASS: name | FAIL: name: why | SKIP: name: reason
# and tests/run.sh counts them. Scripts exit 0 unless something failed.
set -u
: "${BUILD:?run through make test (BUILD unset)}"
TESTDATA=${TESTDATA:-}
BIN=$BUILD/bin
_failed=0
TMP=$(mktemp -d /tmp/edge-test.XXXXXX)
trap 'rm -rf "$TMP"' EXIT

pass() { echo "PASS: $1"; }
fail() { echo "FAIL: $1: $2"; _failed=1; }
skip() { echo "SKIP: $1: $2"; }
# check NAME CMD...: PASS when CMD succeeds
check() { n=$1; shift; if "$@"; then pass "$n"; else fail "$n" "command failed: $*"; fi; }
# expect_status NAME WANT CMD...: run CMD, compare its exit status with WANT
expect_status() {
	n=$1; want=$2; shift 2
	"$@" >"$TMP/out" 2>"$TMP/err"; got=$?
	if [ "$got" -eq "$want" ]; then pass "$n"; else
		fail "$n" "exit $got, want $want; stderr: $(head -c 300 "$TMP/err")"; fi
}
have_testdata() { [ -n "$TESTDATA" ] && [ -d "$TESTDATA" ]; }
finish() { exit $_failed; }
