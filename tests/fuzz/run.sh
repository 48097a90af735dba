#!/bin/sh
# tests/fuzz/run.sh: run each libFuzzer target for FUZZ_TIME seconds, starting
# from its seed corpus (tests/fuzz/<lib>/<target>.corpus, if any) and a scratch
# corpus under build/fuzz. Any crash, leak or timeout fails the run.
# FUZZ_SEED and FUZZ_RUNS make a run repeatable (CI uses both: the same
# inputs every time, so a red CI is a reproducible finding, not luck).
set -eu
FUZZ_TIME=${FUZZ_TIME:-60}
FUZZ_SEED=${FUZZ_SEED:-}
FUZZ_RUNS=${FUZZ_RUNS:-}
extra=""
[ -z "$FUZZ_SEED" ] || extra="$extra -seed=$FUZZ_SEED"
[ -z "$FUZZ_RUNS" ] || extra="$extra -runs=$FUZZ_RUNS"
rc=0
for bin in "$@"; do
	name=$(basename "$bin")
	work=build/fuzz/corpus-$name
	mkdir -p "$work"
	seeds=$(find tests/fuzz -type d -name "$name.corpus" | head -1)
	echo "== fuzz $name for ${FUZZ_TIME}s"
	if ! "$bin" -max_total_time="$FUZZ_TIME" -timeout=10 -rss_limit_mb=2048 \
		-print_final_stats=1 $extra -artifact_prefix=build/fuzz/"$name"- "$work" $seeds \
		> build/fuzz/"$name".log 2>&1; then
		tail -40 build/fuzz/"$name".log
		echo "fuzz $name: FAILED (see build/fuzz/$name.log)"
		rc=1
	else
		grep -aE 'stat::number_of_executed_runs|cov:' build/fuzz/"$name".log | tail -2
		echo "fuzz $name: ok"
	fi
done
exit $rc
