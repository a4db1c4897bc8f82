#!/usr/bin/env bash
# brood vs xargs -P vs GNU parallel, side by side in one hyperfine run:
# N `true` jobs for each N in $SIZES (default "2000 10000"), -j at twice
# the core count. Reports each tool's mean and the ratios the CLI issue
# targets: brood <= 1.1x xargs -P, and parallel >= 5x brood. brood runs
# with its defaults (--contain auto: each job in a cgroup of its own where
# it can make one) and, beside it in the same hyperfine run, with
# --contain cgroup, group and none (none: a process group, as before
# containment): their ratios to none are what containment costs per job.
# BASELINE=PATH adds another brood binary (an older build) to the same run.
#
#   crates/brood-cli/bench/vs-xargs.sh
#   SIZES=2000 RUNS=3 crates/brood-cli/bench/vs-xargs.sh
#   BASELINE=/tmp/brood-before crates/brood-cli/bench/vs-xargs.sh
#
# Each size also reports the floor: the jobs' own CPU spread over every
# core, which no runner can beat, and so how much faster than GNU parallel
# a runner that cost nothing would be in the same run.
#
# Then brood's peak RSS in the output cases of the issue: 1 GiB of
# group-mode output held back by -k, an endless job in group mode bounded by
# --timeout, and 1 GiB of long lines in line mode held back by -k.
set -euo pipefail

SIZES=${SIZES:-"2000 10000"}
RUNS=${RUNS:-3}
J=${J:-$((2 * $(nproc)))}
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../../.." && pwd)
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
# hyperfine and GNU parallel, installed with apt-get where missing.
"$ROOT/scripts/test-tools" hyperfine

cargo build --quiet --release -p brood-cli --manifest-path "$ROOT/Cargo.toml"
BROOD="$CARGO_TARGET_DIR/release/brood"
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
TRUE=$(command -v true)

# parent_cpu N CMD...: the CPU time of CMD's own process (all its threads,
# not its children) per job, in microseconds: utime + stime read from
# /proc/PID/stat once CMD has exited but is not yet reaped.
parent_cpu() {
    python3 - "$@" <<'PY'
import os, subprocess, sys, time
n, cmd = int(sys.argv[1]), sys.argv[2:]
child = subprocess.Popen(["sh", "-c", 'exec "$@" < "$IN"', "sh"] + cmd,
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
tick = os.sysconf("SC_CLK_TCK")
while True:
    with open(f"/proc/{child.pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    if fields[0] == "Z":
        break
    time.sleep(0.01)
cpu = (int(fields[11]) + int(fields[12])) / tick
child.wait()
print(f"{cpu * 1e6 / n:.0f}")
PY
}

for N in $SIZES; do
    seq "$N" >"$WORK/in"
    baseline=()
    if [ -n "${BASELINE:-}" ]; then
        baseline=(-n "brood (baseline)" "$BASELINE run -j $J $TRUE < $WORK/in")
    fi
    hyperfine --runs "$RUNS" --warmup 1 --export-json "$WORK/r$N.json" \
        -n brood "$BROOD run -j $J $TRUE < $WORK/in" \
        -n "brood --contain cgroup" "$BROOD run --contain cgroup -j $J $TRUE < $WORK/in" \
        -n "brood --contain group" "$BROOD run --contain group -j $J $TRUE < $WORK/in" \
        -n "brood --contain none" "$BROOD run --contain none -j $J $TRUE < $WORK/in" \
        "${baseline[@]}" \
        -n "xargs -P" "xargs -P $J -n 1 $TRUE < $WORK/in" \
        -n "GNU parallel" "parallel --will-cite -j $J $TRUE < $WORK/in" >&2
    # brood's own CPU per job at this size, to tell its cost from the jobs'.
    own=$(IN="$WORK/in" parent_cpu "$N" "$BROOD" run -j "$J" "$TRUE")
    python3 - "$WORK/r$N.json" "$N" "$own" "$(nproc)" <<'PY'
import json, sys
results = json.load(open(sys.argv[1]))["results"]
r = {x["command"]: x["mean"] for x in results}
cpu = {x["command"]: x["user"] + x["system"] for x in results}
n, own, cores = int(sys.argv[2]), float(sys.argv[3]) * 1e-6, int(sys.argv[4])
b, x, p = r["brood"], r["xargs -P"], r["GNU parallel"]
print(f"N={n}: " + ", ".join(f"{name} {mean:.3f}s" for name, mean in r.items()))
print(f"  brood / xargs    = {b/x:.2f}x (target <= 1.10x: {'met' if b/x <= 1.10 else 'MISSED'})")
print(f"  parallel / brood = {p/b:.2f}x (target >= 5x: {'met' if p/b >= 5 else 'MISSED'})")
none = r["brood --contain none"]
for name in ["brood", "brood --contain cgroup", "brood --contain group"]:
    t = r[name]
    print(f"  {name} / brood --contain none = {t/none:.2f}x "
          f"({(t - none) / n * 1e6:+.0f} us of wall time per job); / xargs = {t/x:.2f}x")
print(f"  brood --contain none / xargs = {none/x:.2f}x")
# The floor: the jobs' own CPU (brood's run, all CPU less brood's own) spread
# over every core. No runner, however cheap, finishes these jobs sooner.
jobs = cpu["brood"] / n - own
floor = n * jobs / cores
print(f"  floor: the jobs take {jobs * 1e6:.0f} us of CPU each (brood's own: {own * 1e6:.0f} us), "
      f"{floor:.3f}s on {cores} cores; brood / floor = {b/floor:.2f}x, xargs / floor = {x/floor:.2f}x")
print(f"  a runner that cost nothing would be {p/floor:.2f}x faster than GNU parallel "
      f"(xargs -P is {p/x:.2f}x)")
if "brood (baseline)" in r:
    base = r["brood (baseline)"]
    print(f"  brood / baseline = {b/base:.2f}x; brood --contain none / baseline = {none/base:.2f}x")
PY
done

N=${SIZES##* }
seq "$N" >"$WORK/in"
export IN="$WORK/in"
echo "own CPU per job (N=$N, -j $J; utime + stime of the tool's process, children excluded):"
# brood's default was measured at this size already, by the loop's last round.
echo "  brood:        $own us"
for how in cgroup group none; do
    echo "  brood --contain $how: $(parent_cpu "$N" "$BROOD" run --contain "$how" -j "$J" "$TRUE") us"
done
if [ -n "${BASELINE:-}" ]; then
    echo "  brood (baseline): $(parent_cpu "$N" "$BASELINE" run -j "$J" "$TRUE") us"
fi
echo "  xargs -P:     $(parent_cpu "$N" xargs -P "$J" -n 1 "$TRUE") us"
echo "  GNU parallel: $(parent_cpu "$N" parallel --will-cite -j "$J" "$TRUE") us"

# peak_rss CMD...: the peak RSS in MiB of CMD, from wait4(2): the largest
# of brood and the jobs it waited for (`head` and `yes` stay near 2 MiB,
# so a larger figure is brood's).
peak_rss() {
    python3 - "$@" <<'PY'
import os, subprocess, sys
child = subprocess.Popen(sys.argv[1:], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
_, _, usage = os.wait4(child.pid, 0)
print(usage.ru_maxrss // 1024)
PY
}
# -N0: each input makes a job but is not passed to it.
echo "peak RSS, 1 GiB held back (-k -j 16, 16 x 64 MiB): $(peak_rss "$BROOD" run -k -j 16 -N0 head -c 67108864 /dev/zero ::: $(seq 16)) MiB (bound: 64)"
echo "peak RSS, endless job in group mode (yes, --timeout 10s): $(peak_rss "$BROOD" run --timeout 10s yes ::: x) MiB (bound: 64)"
echo "peak RSS, 1 GiB in 1 MiB lines, --line-buffer -k -j 16: $(peak_rss "$BROOD" run -k -j 16 --line-buffer -N0 sh -c 'head -c 67108864 /dev/zero | tr "\\0" x | fold -w 1048576' ::: $(seq 16)) MiB (bound: 64)"
