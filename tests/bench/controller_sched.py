#!/usr/bin/env python3
"""controller_sched.py: read the traces of controller_sched.sh TRACE=DIR (issue 5 diagnosis).

Usage: python3 tests/bench/controller_sched.py DIR/trace.CASE [TOP]

For the TOP slowest requests (default 10) it prints the two longest stretches (> 0.5 ms) in
which one of the core's threads was runnable but not running, and how each began: woken onto
a CPU that ran something else, or preempted / yielded (prev_state R) and who took the CPU,
and whether a core thread on that CPU then slept. It also counts the requests in which the
two pool workers took turns on one CPU (more than 10 switches from one to the other: the
pair stacked on a CPU while the other CPU was free), and what else ran on the CPUs in each
request's window (ms per task name: "core" for the core's threads other than the two
workers, e.g. the HTTP connection threads; "idle" for no task), so a request can be matched
with a supervise tick ("edgectl" ran, the core's admin/metrics/health threads ran). When
DIR/trace.CASE.sup exists (controller.sh TRACE=DIR), it also compares the requests during
which edgectl ran with the others. Input: the ftrace text format of
sched_switch, sched_wakeup(_new), sched_migrate_task and the REQ markers; DIR/trace.CASE.tids
lists the core's threads ("tid comm" per line).
"""
import collections
import re
import sys

LINE = re.compile(r'^\s*(.+?)-(\d+)\s+\[(\d+)\]\s+\S+\s+([\d.]+):\s+(\w+):\s+(.*)$')


def kv(rest):
    return dict(re.findall(r'(\w+)=(\S+)', rest))


def main():
    if len(sys.argv) < 2:
        print('usage: controller_sched.py DIR/trace.CASE [TOP]', file=sys.stderr)
        return 2
    fn = sys.argv[1]
    top = int(sys.argv[2]) if len(sys.argv) > 2 else 10
    tids = {}
    with open(fn + '.tids') as f:
        for line in f:
            t, comm = line.split(None, 1)
            tids[int(t)] = comm.strip()
    workers = sorted(t for t, c in tids.items() if c == 'dify-edge')[1:3]
    queued = {}  # core tid -> (cpu, since, how it began)
    cur = {}     # cpu -> (tid, comm)
    since = {}   # cpu -> when cur[cpu] began running

    def label(t, comm):
        if t in workers:
            return 'worker'
        if t == 0:
            return 'idle'
        if t in tids or comm == 'dify-edge':
            return 'core'
        return comm

    def account(cpu, ts):
        if r is None or cpu not in cur:
            return
        t0 = max(since.get(cpu, r['b']), r['b'])
        if ts > t0:
            lb = label(*cur[cpu])
            r['ran'][lb] = r['ran'].get(lb, 0.0) + (ts - t0) * 1e3
    reqs, r = [], None
    with open(fn) as f:
        for line in f:
            m = LINE.match(line)
            if not m:
                continue
            _, _, cpu, ts, name, rest = m.groups()
            cpu, ts = int(cpu), float(ts)
            if name == 'tracing_mark_write':
                w = rest.split()
                if len(w) >= 4 and w[0] == 'REQ' and w[3] == 'B':
                    r = {'waits': [], 'pingpong': 0, 'b': ts, 'ran': {}, 'born': 0}
                elif len(w) >= 5 and w[0] == 'REQ' and w[3] == 'E' and r is not None:
                    for c in list(cur):
                        account(c, ts)
                    r['lat'] = float(w[4]) * 1e3
                    reqs.append(r)
                    r = None
                continue
            d = kv(rest)
            if name == 'sched_wakeup_new' and r is not None and d.get('comm') == 'dify-edge':
                r['born'] += 1
            if name in ('sched_wakeup', 'sched_wakeup_new'):
                t = int(d['pid'])
                if t in tids:
                    c = int(d['target_cpu'])
                    ct = cur.get(c, (0, 'idle'))
                    queued[t] = (c, ts, 'woken onto CPU %d running %s/%d' % (c, ct[1], ct[0]))
            elif name == 'sched_migrate_task':
                t = int(d['pid'])
                if t in queued:
                    _, s0, why = queued[t]
                    queued[t] = (int(d['dest_cpu']), s0, why + '; migrated')
            elif name == 'sched_switch':
                p, n = int(d['prev_pid']), int(d['next_pid'])
                if r is not None and p in workers and n in workers:
                    r['pingpong'] += 1
                if p in tids and d['prev_state'].startswith('R'):
                    queued[p] = (cpu, ts, 'preempted or yielded, CPU to %s' % d['next_comm'])
                if n in tids and n in queued:
                    _, s0, why = queued.pop(n)
                    if r is not None and ts - s0 > 0.0005:
                        r['waits'].append(((ts - s0) * 1e3, '%s/%d' % (tids[n], n), why))
                account(cpu, ts)
                cur[cpu] = (n, d['next_comm'])
                since[cpu] = ts
                if p in tids and n not in tids and not d['prev_state'].startswith('R'):
                    for t, (c, s0, why) in list(queued.items()):
                        if c == cpu:
                            queued[t] = (c, s0, why + '; then %s/%d slept, CPU to %s' % (tids[p], p, d['next_comm']))
    if not reqs:
        print('%s: no REQ markers' % fn, file=sys.stderr)
        return 1
    stacked = [q for q in reqs if q['pingpong'] > 10]
    print('%s: %d requests; %d with the two workers taking turns on one CPU (mean %.2f ms vs %.2f ms)' % (
        fn, len(reqs), len(stacked), sum(q['lat'] for q in stacked) / max(1, len(stacked)),
        sum(q['lat'] for q in reqs if q['pingpong'] <= 10) / max(1, len(reqs) - len(stacked))))
    def others(q):
        o = sorted(((v, k) for k, v in q['ran'].items() if k not in ('worker', 'idle') and v >= 0.05), reverse=True)
        return ', '.join('%s %.2f' % (k, v) for v, k in o[:4]) or '-'

    for q in sorted(reqs, key=lambda q: -q['lat'])[:top]:
        waits = sorted(q['waits'], reverse=True)[:2]
        print('%6.1f ms  worker turns %3d  core threads born %d  others ran (ms): %s' % (
            q['lat'], q['pingpong'], q['born'], others(q)))
        print('          %s' % ('; '.join('%.2f ms %s [%s]' % w for w in waits) or '-'))
    try:
        open(fn + '.sup').close()
    except OSError:
        return 0
    ticked = [q for q in reqs if q['ran'].get('edgectl', 0) > 0]
    rest = [q for q in reqs if q['ran'].get('edgectl', 0) == 0]
    slow = sorted(reqs, key=lambda q: -q['lat'])[:top]
    print('requests during which edgectl ran: %d of %d, mean %.2f ms (others %.2f ms); %d of the %d slowest' % (
        len(ticked), len(reqs), sum(q['lat'] for q in ticked) / max(1, len(ticked)),
        sum(q['lat'] for q in rest) / max(1, len(rest)), sum(1 for q in slow if q in ticked), len(slow)))
    return 0


if __name__ == '__main__':
    sys.exit(main())
