#!/usr/bin/env python3
# Usage: strace -f -o TRACE brood-bench worker <lib> S1 n=N; parent_syscalls.py TRACE N
# Prints the system calls per op of the worker process only: its first thread and
# the threads it starts (CLONE_THREAD), never its children. Used for the
# per-op breakdown in docs/BENCHMARKS.md.
# Per-op syscall counts of the parent process only (all its threads), from `strace -f -o FILE`.
import re, sys, collections
path, n = sys.argv[1], int(sys.argv[2])
lines = open(path).read().splitlines()
first = int(lines[0].split()[0])
threads = {first}
counts = collections.Counter()
pending = {}
for l in lines:
    m = re.match(r'(\d+)\s+(.*)', l)
    if not m: continue
    pid, rest = int(m.group(1)), m.group(2)
    if pid not in threads: continue
    if rest.startswith('<... '):
        name = rest[5:].split()[0]
        call = pending.pop(pid, None) or rest
    else:
        mm = re.match(r'([a-z0-9_]+)\(', rest)
        if not mm: continue
        name = mm.group(1)
        counts[name] += 1
        call = rest
        if rest.endswith('<unfinished ...>'):
            pending[pid] = rest
            continue
    if ('clone3(' in call or 'clone(' in call) and 'CLONE_THREAD' in call:
        r = re.search(r'= (\d+)', rest)
        if r: threads.add(int(r.group(1)))
print(' '.join(f'{k}:{v/n:.2f}' for k, v in counts.most_common() if v/n >= 0.005))
