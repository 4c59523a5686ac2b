#!/usr/bin/env python3
"""The pauses between two sends in one room, read from Synapse's access log (homeserver.log).

For every `PUT /_matrix/client/v3/rooms/{room}/send/...` Synapse logs when it answered and how
long the request took; so per room, the start of one send minus the answer to the previous one is
how long its sender paused in between. In the relay benchmark (`SWITCHBOARD_TEST_KEEP=1
scripts/bench.sh` keeps Synapse's directory) that is, for the bridge's inbound sends, how long the
bridge worked between two messages of one conversation; for the appservice control, how long the
benchmark did. docs/performance.md ("The lobby off the customer's path") shows what it found.

    scripts/send-pauses.py /tmp/sb-synapse-XXXX/homeserver.log [sender]

Senders are told apart by transaction id prefix: `sb-in` the bridge's inbound sends, `sb-lobby`
its lobby entries, `ta` the benchmark's appservice control, `t` the benchmark's operator
(throughput rounds of the direct and outbound paths). Pauses of 500 ms or more (between bursts)
are left out. With a sender, its pauses are also listed by size.
"""
import collections
import datetime
import re
import statistics
import sys

LINE = re.compile(
    r'^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}) .*? Processed request: ([\d.]+)sec/.*?'
    r'"PUT /_matrix/client/v3/rooms/([^/]+)/send/[^/ ]+/([^ ?"]+)'
)
SENDERS = {"sb-in": "bridge inbound", "sb-lobby": "bridge lobby", "ta": "appservice control", "t": "benchmark operator"}


def sender(txn):
    prefix = re.match(r"[a-z]+(?:-[a-z]+)?", txn)
    return SENDERS.get(prefix.group(0) if prefix else "", "other")


def main():
    sends = collections.defaultdict(list)
    with open(sys.argv[1], errors="replace") as log:
        for line in log:
            m = LINE.search(line)
            if not m:
                continue
            answered = datetime.datetime.strptime(m.group(1), "%Y-%m-%d %H:%M:%S,%f").timestamp()
            took = float(m.group(2))
            sends[(sender(m.group(4)), m.group(3))].append((answered - took, answered))
    pauses = collections.defaultdict(list)
    for (who, _room), times in sends.items():
        times.sort()
        for (_, answered), (started, _) in zip(times, times[1:]):
            pause = (started - answered) * 1000
            if 0 <= pause < 500:
                pauses[who].append(pause)
    for who, p in sorted(pauses.items()):
        p.sort()
        print(f"{who:20s} {len(p):6d} pauses  p50 {p[len(p) // 2]:6.1f} ms  mean {statistics.mean(p):6.1f} ms  p90 {p[int(len(p) * 0.9)]:6.1f} ms")
    if len(sys.argv) > 2:
        p = pauses.get(sys.argv[2], [])
        for lo, hi in [(0, 2), (2, 5), (5, 10), (10, 20), (20, 50), (50, 100), (100, 200), (200, 500)]:
            these = [x for x in p if lo <= x < hi]
            print(f"  {lo:3d}-{hi:3d} ms: {len(these):6d}  ({sum(these) / 1000:.2f} s in all)")


if __name__ == "__main__":
    main()
