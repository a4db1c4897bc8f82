#!/usr/bin/env bash
# brood vs xargs -P vs GNU parallel: N `true` jobs (default 10000), -j at
# twice the core count, all three timed in the same run, side by side.
#
#   crates/brood-cli/bench/vs-xargs.sh            # N=10000, 3 rounds
#   N=2000 ROUNDS=1 crates/brood-cli/bench/vs-xargs.sh
#
# Targets: brood within 1.1x of xargs -P, and at least 5x faster than GNU
# parallel. Each round runs the tools in turn (brood, xargs, parallel) so
# that background load hits them alike; the median round counts.
#
# Installs GNU parallel with apt-get if it is missing (this script only;
# the tests never do). Set SKIP_PARALLEL=1 to leave it out.
set -euo pipefail

N=${N:-10000}
ROUNDS=${ROUNDS:-3}
CORES=$(nproc)
J=${J:-$((2 * CORES))}
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../../.." && pwd)
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}

echo "building brood (release)..." >&2
cargo build --quiet --release -p brood-cli --manifest-path "$ROOT/Cargo.toml"
BROOD="$CARGO_TARGET_DIR/release/brood"

HAVE_PARALLEL=0
if [ "${SKIP_PARALLEL:-0}" != 1 ]; then
    if ! parallel --version 2>/dev/null | grep -q 'GNU parallel'; then
        echo "installing GNU parallel..." >&2
        SUDO=""
        [ "$(id -u)" = 0 ] || SUDO=sudo
        $SUDO apt-get update -qq >&2
        DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq parallel >&2
    fi
    parallel --version 2>/dev/null | grep -q 'GNU parallel' && HAVE_PARALLEL=1
fi

WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
seq "$N" >"$WORK/inputs"
TRUE=$(command -v true)

now() { date +%s.%N; }

# time_cmd NAME CMD...: runs CMD with the inputs on stdin, prints seconds.
time_cmd() {
    local start end
    start=$(now)
    "$@" <"$WORK/inputs" >/dev/null 2>"$WORK/stderr" || {
        echo "$1 failed:" >&2
        cat "$WORK/stderr" >&2
        exit 1
    }
    end=$(now)
    echo "$end - $start" | bc -l
}

median() { sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

echo "N=$N jobs of $TRUE, -j $J ($CORES cores), $ROUNDS round(s)" >&2
: >"$WORK/brood.t"
: >"$WORK/xargs.t"
: >"$WORK/parallel.t"
for round in $(seq "$ROUNDS"); do
    b=$(time_cmd "$BROOD" run -j "$J" -- "$TRUE")
    x=$(time_cmd xargs -P "$J" -n 1 "$TRUE")
    echo "$b" >>"$WORK/brood.t"
    echo "$x" >>"$WORK/xargs.t"
    line="round $round: brood ${b}s  xargs ${x}s"
    if [ "$HAVE_PARALLEL" = 1 ]; then
        p=$(time_cmd parallel --will-cite -j "$J" "$TRUE")
        echo "$p" >>"$WORK/parallel.t"
        line="$line  parallel ${p}s"
    fi
    echo "$line" >&2
done

B=$(median <"$WORK/brood.t")
X=$(median <"$WORK/xargs.t")
printf '\n%-14s %10s %14s\n' tool "seconds" "per job (us)"
printf '%-14s %10.3f %14.1f\n' brood "$B" "$(echo "$B * 1000000 / $N" | bc -l)"
printf '%-14s %10.3f %14.1f\n' "xargs -P" "$X" "$(echo "$X * 1000000 / $N" | bc -l)"
if [ "$HAVE_PARALLEL" = 1 ]; then
    P=$(median <"$WORK/parallel.t")
    printf '%-14s %10.3f %14.1f\n' "GNU parallel" "$P" "$(echo "$P * 1000000 / $N" | bc -l)"
fi
echo
RX=$(echo "$B / $X" | bc -l)
printf 'brood / xargs    = %.2fx  (target <= 1.10x: %s)\n' "$RX" \
    "$(echo "$RX <= 1.10" | bc -l | sed 's/1/met/;s/0/MISSED/')"
if [ "$HAVE_PARALLEL" = 1 ]; then
    RP=$(echo "$P / $B" | bc -l)
    printf 'parallel / brood = %.2fx  (target >= 5x: %s)\n' "$RP" \
        "$(echo "$RP >= 5" | bc -l | sed 's/1/met/;s/0/MISSED/')"
fi
