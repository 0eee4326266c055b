#!/usr/bin/env bash
# Builds every cargo-fuzz target and runs each for a bounded time on a copy of its seed corpus.
# Exits non-zero when a target crashes (the reproducer is left in fuzz/artifacts/<target>/).
#
#   fuzz/run.sh                 # all targets, 30 s each
#   FUZZ_SECONDS=300 fuzz/run.sh web_config
#
# Seeds: fuzz/seeds/<target>/ (committed), fuzz/corpus/<target>/ if present, plus real files
# found on this machine (this repo's configs, Debian's Prometheus and Alertmanager examples).
# cargo-fuzz needs nightly features; on a stable toolchain RUSTC_BOOTSTRAP=1 unlocks them.
set -euo pipefail
cd "$(dirname "$0")"
secs="${FUZZ_SECONDS:-30}"
export RUSTC_BOOTSTRAP=1

if ! command -v cargo-fuzz >/dev/null 2>&1; then
    echo "fuzz/run.sh: installing cargo-fuzz"
    cargo install cargo-fuzz --locked
fi

targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
    mapfile -t targets < <(cargo fuzz list)
fi

extra_seeds() {
    case "$1" in
        config_load)
            ls ../src/config/default.yml ../systemd/*.yml /etc/prometheus/prometheus.yml \
                /usr/share/doc/prometheus/examples/prometheus.yml 2>/dev/null || true ;;
        web_config)
            ls /usr/share/doc/prometheus-alertmanager/examples/ha/tls/*.yml 2>/dev/null || true ;;
        promql_parse)
            ls ../tests/promql/*.test 2>/dev/null || true ;;
    esac
}

failed=()
for t in "${targets[@]}"; do
    echo "=== fuzz target $t: build"
    cargo fuzz build -O "$t"
    work="$(mktemp -d)"
    for d in "seeds/$t" "corpus/$t"; do
        [ -d "$d" ] && cp -r "$d/." "$work/" 2>/dev/null || true
    done
    for f in $(extra_seeds "$t"); do cp "$f" "$work/$(echo "$f" | tr '/' '_')"; done
    echo "=== fuzz target $t: ${secs}s on $(ls "$work" | wc -l) seeds"
    if cargo fuzz run -O "$t" "$work" -- -max_total_time="$secs" -rss_limit_mb=2048 -timeout=10 \
        -print_final_stats=1 2>"$work.log"; then
        grep -E "stat::number_of_executed_units|cov:" "$work.log" | tail -2 || true
        echo "=== fuzz target $t: ok"
    else
        tail -40 "$work.log"
        echo "=== fuzz target $t: CRASH (reproducer in fuzz/artifacts/$t/)"
        failed+=("$t")
    fi
    rm -rf "$work" "$work.log"
done

if [ ${#failed[@]} -gt 0 ]; then
    echo "fuzz/run.sh: crashes in: ${failed[*]}"
    exit 1
fi
echo "fuzz/run.sh: ${#targets[@]} targets ran ${secs}s each without a crash"
