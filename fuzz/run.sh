#!/usr/bin/env bash
# Runs every cargo-fuzz target for a bounded time and prints the executions of each.
#
#   fuzz/run.sh [SECONDS] [TARGET...]     (default: 30 s each, every target)
#
# Needs the nightly toolchain (`rustup toolchain install nightly`) and cargo-fuzz, which
# this script installs from crates.io (`cargo install cargo-fuzz`) when it is missing.
# Corpora grow in fuzz/corpus/TARGET and crashes land in fuzz/artifacts/TARGET (both
# ignored by git, except the seeds in fuzz/seeds/TARGET, which are copied in first).
# Exits non-zero if any target found a crash.
set -euo pipefail
cd "$(dirname "$0")"

secs="${1:-30}"
shift || true
if ! [[ "$secs" =~ ^[0-9]+$ ]] || [ "$secs" -eq 0 ]; then
    echo "usage: fuzz/run.sh [SECONDS] [TARGET...]" >&2
    exit 64
fi
if ! cargo +nightly --version >/dev/null 2>&1; then
    echo "fuzz/run.sh: the nightly toolchain is missing: rustup toolchain install nightly" >&2
    exit 69
fi
if ! cargo +nightly fuzz --version >/dev/null 2>&1; then
    echo "fuzz/run.sh: installing cargo-fuzz from crates.io" >&2
    cargo install cargo-fuzz --locked
fi

targets=("$@")
if [ "${#targets[@]}" -eq 0 ]; then
    mapfile -t targets < <(cargo +nightly fuzz list)
fi

cargo +nightly fuzz build
mkdir -p logs
failed=0
printf '%-14s %12s %10s  %s\n' target executions exec/s result
for t in "${targets[@]}"; do
    mkdir -p "corpus/$t"
    if [ -d "seeds/$t" ]; then
        cp -n "seeds/$t"/* "corpus/$t"/ 2>/dev/null || true
    fi
    log="logs/$t.log"
    if cargo +nightly fuzz run "$t" "corpus/$t" -- -max_total_time="$secs" -print_final_stats=1 >"$log" 2>&1; then
        result=ok
    else
        result="CRASH (see $log and artifacts/$t)"
        failed=1
    fi
    runs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' | tail -1)
    rate=$(grep -o 'stat::average_exec_per_sec: *[0-9]*' "$log" | grep -o '[0-9]*$' | tail -1)
    printf '%-14s %12s %10s  %s\n' "$t" "${runs:-?}" "${rate:-?}" "$result"
done
exit "$failed"
