#!/usr/bin/env python3
"""Spawn -> `version` reply -> exit, for the release host binary.

Not a test: a measurement to rerun. Prints the median, p95 and max wall time over N runs and
the host's peak resident set size (VmHWM, read from /proc after the reply and before stdin
closes: wait4's ru_maxrss would also count the forking Python parent's memory).

    cargo build --release -p cacbridge-host && python3 bench/startup.py [--runs 300]
"""
import argparse
import json
import os
import re
import statistics
import struct
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
HOST = os.path.join(ROOT, "target", "release", "cacbridge-host")
ORIGIN = "chrome-extension://hbgoeppihilglplcjaehcplpmmndoigi/"


def frame(obj):
    body = json.dumps(obj).encode()
    return struct.pack("=I", len(body)) + body


def one_run(log_dir):
    request = frame({"id": 1, "command": "version"})
    env = dict(os.environ, CACBRIDGE_LOG_DIR=log_dir)
    start = time.perf_counter()
    proc = subprocess.Popen([HOST, ORIGIN], stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env)
    proc.stdin.write(request)
    proc.stdin.flush()
    (length,) = struct.unpack("=I", proc.stdout.read(4))
    reply = json.loads(proc.stdout.read(length))
    with open(f"/proc/{proc.pid}/status") as status_file:
        peak_kib = int(re.search(r"VmHWM:\s+(\d+) kB", status_file.read()).group(1))
    proc.stdin.close()
    _, status, _ = os.wait4(proc.pid, 0)
    elapsed = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    assert reply["result"]["protocol"] == 1, reply
    assert proc.returncode == 0, proc.returncode
    return elapsed, peak_kib


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=300)
    args = parser.parse_args()
    if not os.path.exists(HOST):
        sys.exit(f"{HOST} missing: cargo build --release -p cacbridge-host")
    with tempfile.TemporaryDirectory() as log_dir:
        for _ in range(10):  # warm the page cache
            one_run(log_dir)
        runs = [one_run(log_dir) for _ in range(args.runs)]
    times = sorted(t * 1000 for t, _ in runs)
    rss = max(r for _, r in runs)
    p95 = times[int(len(times) * 0.95) - 1]
    print(f"runs {len(times)}: median {statistics.median(times):.2f} ms, "
          f"p95 {p95:.2f} ms, max {times[-1]:.2f} ms; peak RSS {rss / 1024:.1f} MiB")


if __name__ == "__main__":
    main()
