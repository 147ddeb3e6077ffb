#!/usr/bin/env python3
"""The host over its own PC/SC applet code and over OpenSC's PKCS#11 module (the policy's
`backends`), on the same virtual card: APDUs and time for what the extension's window asks
(the authentication certificate) and for one authentication (PIN and signature).

Not a test: a measurement to rerun.

    tests/harness/testbed-setup && cargo build -p cacbridge-host
    python3 bench/backends.py [--runs 3] [--delays 0,30]

The debug host is used for both rows: only a debug build reads a policy named by
CACBRIDGE_SYSTEM_POLICY, and the APDU counts do not depend on the build. Each run starts from
a fresh copy of the golden card "doe", an empty CAC Bridge cache and no OpenSC file cache.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from register_path import NONCE, ORIGIN, OPENSC, PIN, ROOT, Card, Host, timed  # noqa: E402

DEBUG_HOST = os.path.join(ROOT, "target", "debug", "cacbridge-host")


def measure(backend, delay, runs):
    rows = {"window's list": [], "authenticate": []}
    for _ in range(runs):
        with tempfile.TemporaryDirectory() as work:
            policy = os.path.join(work, "policy.json")
            with open(policy, "w") as f:
                json.dump({"backends": [backend]}, f)
            os.environ["CACBRIDGE_SYSTEM_POLICY"] = policy
            subprocess.run(["rm", "-rf", os.path.expanduser("~/.cache/opensc")], check=False)
            with Card(delay) as card:
                host = Host(os.path.join(work, "cache"), DEBUG_HOST)
                n, t, replies = timed(card, host.window)
                rows["window's list"].append((n, t))
                certificate = replies[1]["result"]["certificates"][0]["id"]
                n, t, _ = timed(card, lambda: host.wait([host.send("authenticate", {
                    "certificateId": certificate, "challengeNonce": NONCE,
                    "origin": ORIGIN, "pin": PIN})]))
                rows["authenticate"].append((n, t))
                host.close()
    return rows


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--delays", default="0,30")
    args = parser.parse_args()
    if not os.path.exists(DEBUG_HOST):
        sys.exit(f"{DEBUG_HOST} missing: see the usage at the top of this script")
    delays = [int(d) for d in args.delays.split(",")]
    header = " | ".join(f"{d} ms/APDU: APDUs, median" for d in delays)
    print(f"| Backend, step ({args.runs} runs) | {header} |")
    print("|---|" + "---|" * len(delays))
    for backend, label in (("pcsc", "PC/SC (CAC Bridge's applet code)"), (OPENSC, "OpenSC's PKCS#11 module")):
        results = {delay: measure(backend, delay, args.runs) for delay in delays}
        for step in results[delays[0]]:
            cells = []
            for delay in delays:
                samples = results[delay][step]
                counts = sorted({n for n, _ in samples})
                count = str(counts[0]) if len(counts) == 1 else f"{counts[0]}-{counts[-1]}"
                cells.append(f"{count}, {statistics.median(t for _, t in samples) * 1000:.0f} ms")
            print(f"| {label}: {step} | {' | '.join(cells)} |")


if __name__ == "__main__":
    main()
