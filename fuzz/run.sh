#!/usr/bin/env bash
# Runs the fuzz targets: each for SECONDS (default 10), or the ones named, and prints each
# target's executions and crashes; exits 1 if any target crashed (its input is kept in
# fuzz/artifacts/<target>/).
#   fuzz/run.sh [SECONDS] [TARGET...]
#   fuzz/run.sh 5                 # the short run .ci/run does (every target, ~5 s each)
#   fuzz/run.sh 3600 report       # a long run of one target
#   FUZZ_RUNS=10000000 fuzz/run.sh 0 journal   # a number of executions instead of a time
# Needs nightly and cargo-fuzz; installs them when missing (cargo-fuzz builds in ~2-3 min).
# Runs write new inputs to fuzz/corpus-run/<target> (not committed) and read the committed
# seeds in fuzz/corpus/<target>; crashes found are fixed, then kept as regression inputs in
# fuzz/regressions/<target>/ (cargo test runs them: fuzzing::tests).
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-10}
shift || true
if [ $# -gt 0 ]; then
    targets=("$@")
else
    targets=()
    for f in fuzz/fuzz_targets/*.rs; do targets+=("$(basename "$f" .rs)"); done
fi
rustup toolchain list | grep -q '^nightly' || rustup toolchain install nightly --profile minimal
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked
cargo +nightly fuzz build >/dev/null
limit=(-max_total_time="$secs")
if [ -n "${FUZZ_RUNS:-}" ]; then limit=(-runs="$FUZZ_RUNS"); fi
failed=()
for t in "${targets[@]}"; do
    mkdir -p "fuzz/corpus-run/$t" "fuzz/artifacts/$t"
    log="fuzz/artifacts/$t/last-run.log"
    set +e
    cargo +nightly fuzz run "$t" "fuzz/corpus-run/$t" "fuzz/corpus/$t" -- \
        "${limit[@]}" -timeout=10 -print_final_stats=1 >"$log" 2>&1
    rc=$?
    set -e
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
    speed=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)
    if [ "$rc" -eq 0 ]; then
        echo "fuzz $t: ${execs:-?} executions (${speed:-?}/s), 0 crashes"
    else
        echo "fuzz $t: CRASH after ${execs:-?} executions (exit $rc); see $log and fuzz/artifacts/$t/"
        grep -m5 -E 'panicked|ERROR: libFuzzer|SUMMARY' "$log" || true
        failed+=("$t")
    fi
done
if [ ${#failed[@]} -gt 0 ]; then
    echo "fuzz: crashes in ${failed[*]}"
    exit 1
fi
