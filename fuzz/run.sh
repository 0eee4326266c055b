#!/usr/bin/env bash
# Builds every cargo-fuzz target once and runs each for a bounded time on a copy of its seed
# corpus. Exits non-zero when a target crashes, times out or runs out of memory (the reproducer
# is copied to fuzz/artifacts/<target>/).
#
#   fuzz/run.sh                          # all targets, 30 s each
#   FUZZ_SECONDS=300 fuzz/run.sh tsdb_files promql_eval
#
# Seeds: fuzz/seeds/<dir>/ (committed), fuzz/corpus/<target>/ if present, plus real files found
# beside the repo (this repo's configs and PromQL scripts, ../shared's PromQL test scripts,
# Debian's Prometheus and Alertmanager examples).
#
# Only a stable toolchain is needed: RUSTC_BOOTSTRAP=1 unlocks the nightly flags cargo-fuzz
# passes to rustc. Builds go to target/fuzz inside the repo (CARGO_TARGET_DIR overrides), with
# no sanitizer (safe Rust; a panic is the crash we look for) and with debug assertions, so
# integer overflow is caught too.
set -euo pipefail
cd "$(dirname "$0")"
secs="${FUZZ_SECONDS:-30}"
export RUSTC_BOOTSTRAP=1
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$PWD/../target/fuzz}"

if ! command -v cargo-fuzz >/dev/null 2>&1; then
    echo "fuzz/run.sh: installing cargo-fuzz"
    cargo install --locked cargo-fuzz
fi

targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
    mapfile -t targets < <(cargo fuzz list)
fi

seed_dir() {
    case "$1" in
        promql_parse | promql_eval) echo seeds/promql ;;
        *) echo "seeds/$1" ;;
    esac
}

extra_seeds() {
    case "$1" in
        config_load)
            ls ../systemd/*.yml /etc/prometheus/prometheus.yml \
                /usr/share/doc/prometheus/examples/prometheus.yml 2>/dev/null || true ;;
        web_config)
            ls /usr/share/doc/prometheus-alertmanager/examples/ha/tls/*.yml 2>/dev/null || true ;;
        promql_parse | promql_eval)
            ls ../tests/promql/*.test ../../shared/promql-tests/upstream/*.test 2>/dev/null || true ;;
        textparse)
            ls ../tests/fixtures/node/*.txt 2>/dev/null || true ;;
    esac
}

echo "=== fuzz: building ${#targets[@]} targets into $CARGO_TARGET_DIR"
cargo fuzz build -O -a -s none
bin_dir="$CARGO_TARGET_DIR/x86_64-unknown-linux-gnu/release"

failed=()
for t in "${targets[@]}"; do
    work="$(mktemp -d)"
    mkdir -p "$work/corpus" "$work/art"
    for d in "$(seed_dir "$t")" "corpus/$t"; do
        if [ -d "$d" ]; then cp -r "$d/." "$work/corpus/"; fi
    done
    for f in $(extra_seeds "$t"); do cp "$f" "$work/corpus/$(echo "$f" | tr '/' '_')"; done
    echo "=== fuzz target $t: ${secs}s on $(ls "$work/corpus" | wc -l) seeds"
    if "$bin_dir/$t" "$work/corpus" -max_total_time="$secs" -rss_limit_mb=2048 -timeout=30 \
        -max_len=65536 -artifact_prefix="$work/art/" -print_final_stats=1 >"$work/log" 2>&1; then
        grep -E "stat::number_of_executed_units" "$work/log" | tail -1 || true
        echo "=== fuzz target $t: ok"
    else
        grep -a -A12 "panicked at\|ERROR: libFuzzer" "$work/log" | head -40 || tail -40 "$work/log"
        mkdir -p "artifacts/$t"
        cp "$work/art/"* "artifacts/$t/" 2>/dev/null || true
        echo "=== fuzz target $t: CRASH (reproducer in fuzz/artifacts/$t/; replay: $bin_dir/$t FILE)"
        failed+=("$t")
    fi
    rm -rf "$work"
done

if [ ${#failed[@]} -gt 0 ]; then
    echo "fuzz/run.sh: crashes in: ${failed[*]}"
    exit 1
fi
echo "fuzz/run.sh: ${#targets[@]} targets ran ${secs}s each without a crash"
