#!/usr/bin/env python3
"""APDUs and time to list a card's certificates: cacbridge-host next to OpenSC, on the same
fresh virtual card (golden card "doe": four certificates, 9A stored gzip-compressed).

Not a test: a measurement to rerun.

    tests/harness/testbed-setup && cargo build --release -p cacbridge-host
    python3 bench/card_listing.py [--runs 5]

APDUs are counted by pcscd itself (`--apdu` log), so every client is counted the same way.
The script restarts pcscd with APDU logging; `tests/harness/testbed-setup` restarts it plainly.
"""
import argparse
import json
import os
import shutil
import statistics
import struct
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
HOST = os.path.join(ROOT, "target", "release", "cacbridge-host")
VIRTUAL_PIV = os.path.join(ROOT, "target", "debug", "virtual-piv")
GOLDEN = os.path.join(ROOT, "target", "testbed", "golden", "cards", "doe", "state")
MODULE = "/usr/lib/x86_64-linux-gnu/opensc-pkcs11.so"
READER = "Virtual PCD 00 00"


class Pcscd:
    def __init__(self, log_path):
        subprocess.run(["pkill", "-x", "pcscd"], check=False)
        time.sleep(0.5)
        self.log_path = log_path
        self.proc = subprocess.Popen(["pcscd", "--foreground", "--apdu"],
                                     stdout=open(log_path, "w"), stderr=subprocess.STDOUT)
        time.sleep(1.0)

    def apdus(self):
        with open(self.log_path, errors="replace") as log:
            return sum(1 for line in log if " APDU: " in line)


def card_present():
    out = subprocess.run(["opensc-tool", "-l"], capture_output=True, text=True).stdout
    return any(READER in line and " Yes " in line for line in out.splitlines())


class Card:
    """A fresh copy of the golden card in reader 0."""

    def __enter__(self):
        self.dir = tempfile.mkdtemp()
        for name in ("internal.bin", "external.bin"):
            shutil.copy(os.path.join(GOLDEN, name), self.dir)
        self.proc = subprocess.Popen([VIRTUAL_PIV, "--port", "35963", "--state", self.dir],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.time() + 10
        while not card_present():
            if time.time() > deadline:
                sys.exit("virtual card did not appear")
            time.sleep(0.05)
        time.sleep(0.2)
        return self

    def __exit__(self, *exc):
        self.proc.kill()
        self.proc.wait()
        shutil.rmtree(self.dir)
        while card_present():
            time.sleep(0.05)


def frame(obj):
    body = json.dumps(obj).encode()
    return struct.pack("=I", len(body)) + body


def read_reply(stream):
    (length,) = struct.unpack("=I", stream.read(4))
    return json.loads(stream.read(length))


def measure_command(pcscd, argv):
    shutil.rmtree(os.path.expanduser("~/.cache/opensc"), ignore_errors=True)
    before = pcscd.apdus()
    start = time.perf_counter()
    out = subprocess.run(argv, capture_output=True)
    elapsed = time.perf_counter() - start
    if out.returncode != 0:
        sys.exit(f"{argv[0]} failed: {out.stderr.decode()}")
    time.sleep(0.1)  # let pcscd flush its log
    return pcscd.apdus() - before, elapsed


def measure_repeated(pcscd):
    """Two list-certificates in one host process: the second should cost nothing."""
    proc = subprocess.Popen([HOST, "chrome-extension://hbgoeppihilglplcjaehcplpmmndoigi/"],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    results = []
    for i in range(2):
        before = pcscd.apdus()
        start = time.perf_counter()
        proc.stdin.write(frame({"id": i, "command": "list-certificates"}))
        proc.stdin.flush()
        reply = read_reply(proc.stdout)
        elapsed = time.perf_counter() - start
        assert len(reply["result"]["certificates"]) == 4, reply
        time.sleep(0.1)
        results.append((pcscd.apdus() - before, elapsed))
    proc.stdin.close()
    proc.wait()
    return results


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    for path in (HOST, VIRTUAL_PIV, GOLDEN):
        if not os.path.exists(path):
            sys.exit(f"{path} missing: see the usage at the top of this script")
    subprocess.run(["pkill", "-f", "target/debug/virtual-piv"], check=False)
    log = tempfile.NamedTemporaryFile(prefix="pcscd-apdu-", suffix=".log", delete=False).name
    pcscd = Pcscd(log)
    rows = {
        "cacbridge-host list (cold, new process)": [],
        "cacbridge-host: list-certificates, first in a process": [],
        "cacbridge-host: list-certificates, repeated in the same process": [],
        "OpenSC pkcs15-tool --list-certificates": [],
        "OpenSC pkcs11-tool -O": [],
    }
    for _ in range(args.runs):
        with Card():
            rows["cacbridge-host list (cold, new process)"].append(
                measure_command(pcscd, [HOST, "list", "--json"]))
        with Card():
            first, repeated = measure_repeated(pcscd)
            rows["cacbridge-host: list-certificates, first in a process"].append(first)
            rows["cacbridge-host: list-certificates, repeated in the same process"].append(repeated)
        with Card():
            rows["OpenSC pkcs15-tool --list-certificates"].append(
                measure_command(pcscd, ["pkcs15-tool", "--reader", "0", "--list-certificates"]))
        with Card():
            rows["OpenSC pkcs11-tool -O"].append(
                measure_command(pcscd, ["pkcs11-tool", "--module", MODULE, "-O"]))
    pcscd.proc.terminate()
    print_table(f"Listing ({args.runs} runs, fresh card each)", rows, log)


def print_table(title, rows, log):
    """Rows of (APDUs, seconds) samples as a Markdown table: APDU range and median time."""
    print(f"| {title} | APDUs | median time |")
    print("|---|---|---|")
    for name, samples in rows.items():
        counts = sorted({n for n, _ in samples})
        count = str(counts[0]) if len(counts) == 1 else f"{counts[0]}-{counts[-1]}"
        median = statistics.median(t for _, t in samples) * 1000
        print(f"| {name} | {count} | {median:.0f} ms |")
    print(f"\n(pcscd APDU log: {log}; restart pcscd without --apdu: tests/harness/testbed-setup)")


if __name__ == "__main__":
    main()
