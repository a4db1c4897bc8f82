#!/usr/bin/env bash
# brood vs xargs -P vs GNU parallel, side by side in one hyperfine run:
# N `true` jobs for each N in $SIZES (default "2000 10000"), -j at twice
# the core count. Reports each tool's mean and the ratios the CLI issue
# targets: brood <= 1.1x xargs -P, and parallel >= 5x brood.
#
#   crates/brood-cli/bench/vs-xargs.sh
#   SIZES=2000 RUNS=3 crates/brood-cli/bench/vs-xargs.sh
#
# Then the peak RSS of brood itself (VmHWM) in the two output cases of the
# issue: 1 GiB of group-mode output held back by -k, and an endless job in
# group mode, bounded by --timeout.
set -euo pipefail

SIZES=${SIZES:-"2000 10000"}
RUNS=${RUNS:-3}
J=${J:-$((2 * $(nproc)))}
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../../.." && pwd)
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
command -v hyperfine >/dev/null || { echo "hyperfine is not installed" >&2; exit 1; }
command -v parallel >/dev/null || { echo "GNU parallel is not installed" >&2; exit 1; }

cargo build --quiet --release -p brood-cli --manifest-path "$ROOT/Cargo.toml"
BROOD="$CARGO_TARGET_DIR/release/brood"
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
TRUE=$(command -v true)

for N in $SIZES; do
    seq "$N" >"$WORK/in"
    hyperfine --runs "$RUNS" --warmup 1 --export-json "$WORK/r$N.json" \
        -n brood "$BROOD run -j $J $TRUE < $WORK/in" \
        -n "xargs -P" "xargs -P $J -n 1 $TRUE < $WORK/in" \
        -n "GNU parallel" "parallel --will-cite -j $J $TRUE < $WORK/in" >&2
    python3 - "$WORK/r$N.json" "$N" <<'PY'
import json, sys
r = {x["command"]: x["mean"] for x in json.load(open(sys.argv[1]))["results"]}
n = int(sys.argv[2])
b, x, p = r["brood"], r["xargs -P"], r["GNU parallel"]
print(f"N={n}: brood {b:.3f}s, xargs -P {x:.3f}s, GNU parallel {p:.3f}s")
print(f"  brood / xargs    = {b/x:.2f}x (target <= 1.10x: {'met' if b/x <= 1.10 else 'MISSED'})")
print(f"  parallel / brood = {p/b:.2f}x (target >= 5x: {'met' if p/b >= 5 else 'MISSED'})")
PY
done

# peak_rss CMD...: brood's VmHWM in MiB, read while it runs.
peak_rss() {
    "$@" >/dev/null 2>&1 &
    local pid=$! hwm=0 h
    while kill -0 "$pid" 2>/dev/null; do
        h=$(awk '/VmHWM/ {print $2}' "/proc/$pid/status" 2>/dev/null || true)
        [ -n "$h" ] && hwm=$h
        sleep 0.05
    done
    wait "$pid" || true
    echo "$((hwm / 1024))"
}
echo "peak RSS, 1 GiB held back (-k -j 16, 16 x 64 MiB): $(peak_rss "$BROOD" run -k -j 16 head -c 67108864 /dev/zero ::: $(seq 16)) MiB (bound: 64)"
echo "peak RSS, endless job in group mode (yes, --timeout 10s): $(peak_rss "$BROOD" run --timeout 10s yes ::: x) MiB (bound: 64)"
