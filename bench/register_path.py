#!/usr/bin/env python3
"""From the Register click to the PIN window, from the PIN to the token, and from a PKCS#11
module load to its certificate list: APDUs and time on a virtual card that answers each APDU
after a delay modelling a real CAC, with CAC Bridge and OpenSC side by side.

Not a test: a measurement to rerun.

    tests/harness/testbed-setup && cargo build --release -p cacbridge-host -p cacbridge-pkcs11
    python3 bench/register_path.py [--runs 3] [--delays 0,30] [--before OLD-cacbridge-host]

Why 30 ms per APDU, the least the issue allows: public OpenSC debug logs of real cards show
- a VERIFY answered 30 ms after it left (10:10:39.036 -> 10:10:39.066, OpenSC issue #585);
- a SELECT answered in 48 ms and an MSE in 32 ms (CardOS, OpenSC issue #2925);
- on a DoD CAC through OpenSC.tokend, 40 s from the PIV applet's match to the last
  certificate read (OpenSC pull request #816, 2016-07-11), and 1.6 s between certificate
  reads on a 2019 CAC (the figure the performance issue quotes).
30 ms is a fast real card; the slow ones make every saved APDU worth more.

APDUs are counted by the virtual card itself (`virtual-piv --apdu-log`), so every client is
counted the same way. Each row starts from a fresh copy of the golden card "doe" (9A RSA-2048
gzip-compressed, 9C P-256, 9D RSA-2048, 9E P-256) and an empty CAC Bridge cache unless the
row says otherwise; OpenSC's own file cache is cleared before each OpenSC run.
"""
import argparse
import base64
import json
import os
import shutil
import statistics
import struct
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
HOST = os.path.join(ROOT, "target", "release", "cacbridge-host")
MODULE = os.path.join(ROOT, "target", "release", "libcacbridge_pkcs11.so")
OPENSC = "/usr/lib/x86_64-linux-gnu/opensc-pkcs11.so"
VIRTUAL_PIV = os.path.join(ROOT, "target", "debug", "virtual-piv")
GOLDEN = os.path.join(ROOT, "target", "testbed", "golden", "cards", "doe", "state")
READER = "Virtual PCD 00 00"
CHROME = "chrome-extension://hbgoeppihilglplcjaehcplpmmndoigi/"
ORIGIN = "https://portal.example.mil"
NONCE = base64.b64encode(b"a single-use nonce of 32 bytes!!").decode()
PIN = "123456"


def card_present():
    out = subprocess.run(["opensc-tool", "-l"], capture_output=True, text=True).stdout
    return any(READER in line and " Yes " in line for line in out.splitlines())


class Card:
    """A fresh copy of the golden card in reader 0, answering each APDU after `delay_ms`."""

    def __init__(self, delay_ms):
        self.delay_ms = delay_ms

    def __enter__(self):
        self.dir = tempfile.mkdtemp()
        for name in ("internal.bin", "external.bin"):
            shutil.copy(os.path.join(GOLDEN, name), self.dir)
        self.log = os.path.join(self.dir, "apdus.log")
        self.insert()
        return self

    def insert(self):
        self.proc = subprocess.Popen(
            [VIRTUAL_PIV, "--port", "35963", "--state", self.dir, "--apdu-log", self.log,
             "--delay-ms", str(self.delay_ms)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.time() + 10
        while not card_present():
            if time.time() > deadline:
                sys.exit("virtual card did not appear")
            time.sleep(0.05)

    def apdus(self):
        try:
            with open(self.log) as log:
                return sum(1 for _ in log)
        except FileNotFoundError:
            return 0

    def settled(self):
        """The APDU count once it stops moving (a background read is done)."""
        last = self.apdus()
        while True:
            time.sleep(0.4)
            now = self.apdus()
            if now == last:
                return now
            last = now

    def __exit__(self, *exc):
        self.proc.kill()
        self.proc.wait()
        shutil.rmtree(self.dir)
        while card_present():
            time.sleep(0.05)


class Host:
    """cacbridge-host as Chrome starts it, with the certificate cache in `cache`."""

    def __init__(self, cache, binary=HOST):
        env = dict(os.environ, XDG_CACHE_HOME=cache, CACBRIDGE_LOG="off")
        self.proc = subprocess.Popen([binary, CHROME], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, env=env)
        self.replies = {}
        self.events = []
        self.cond = threading.Condition()
        threading.Thread(target=self._read, daemon=True).start()
        self.next_id = 0

    def _read(self):
        while True:
            head = self.proc.stdout.read(4)
            if len(head) < 4:
                return
            (length,) = struct.unpack("=I", head)
            message = json.loads(self.proc.stdout.read(length))
            with self.cond:
                if "event" in message:
                    self.events.append(message["event"])
                else:
                    self.replies[message["id"]] = message
                self.cond.notify_all()

    def send(self, command, arguments=None):
        self.next_id += 1
        body = json.dumps({"id": self.next_id, "command": command,
                           "arguments": arguments or {}}).encode()
        self.proc.stdin.write(struct.pack("=I", len(body)) + body)
        self.proc.stdin.flush()
        return self.next_id

    def wait(self, ids):
        with self.cond:
            self.cond.wait_for(lambda: all(i in self.replies for i in ids), timeout=60)
            replies = [self.replies[i] for i in ids]
        for reply in replies:
            if "error" in reply:
                sys.exit(f"host error: {reply}")
        return replies

    def wait_event(self, name):
        with self.cond:
            self.cond.wait_for(lambda: name in self.events, timeout=30)

    def window(self):
        """What the extension's window asks when it opens: PIN state and the chooser's list."""
        ids = [self.send("status"), self.send("list-certificates", {"purpose": "authentication"})]
        return self.wait(ids)

    def window_before(self):
        """What the window asked before `purpose` existed: PIN state and every certificate."""
        return self.wait([self.send("status"), self.send("list-certificates")])

    def close(self):
        self.proc.stdin.close()
        self.proc.wait()


def timed(card, action):
    before = card.apdus()
    start = time.perf_counter()
    result = action()
    elapsed = time.perf_counter() - start
    return card.apdus() - before, elapsed, result


def run_tool(argv):
    shutil.rmtree(os.path.expanduser("~/.cache/opensc"), ignore_errors=True)
    out = subprocess.run(argv, capture_output=True)
    if out.returncode != 0:
        sys.exit(f"{argv[0]} failed: {out.stderr.decode()}")


def sign_with(module, directory):
    data = os.path.join(directory, "data")
    with open(data, "wb") as f:
        f.write(b"a TLS handshake, as far as the card knows")
    return ["pkcs11-tool", "--module", module, "--login", "--pin", PIN, "--sign", "--id", "01",
            "-m", "SHA256-RSA-PKCS", "-i", data, "-o", os.path.join(directory, "signature")]


def measure(delay, runs, before):
    rows = {}

    def add(name, sample):
        rows.setdefault(name, []).append(sample[:2])

    for _ in range(runs):
        cache = tempfile.mkdtemp()
        # A host already running and subscribed (a portal page is open) when the card goes in.
        host = Host(cache)
        host.wait([host.send("subscribe")])
        with Card(delay) as card:
            host.wait_event("card-inserted")
            # In the background, before anyone clicks: its APDUs count, its time is nobody's.
            add("host subscribed: prefetch on insertion (background)", (card.settled(), 0.0))
            add("Register click to PIN window, card freshly inserted (prefetched)",
                timed(card, host.window))
            host.close()
            # The browser restarted: a new host process, the card never left the reader.
            host = Host(cache)
            add("Same, new host process, card not removed since the last read",
                timed(card, host.window))
            certificate = host.wait([host.send("list-certificates",
                                               {"purpose": "authentication"})])[0]
            certificate_id = certificate["result"]["certificates"][0]["id"]
            add("PIN to token (authenticate)", timed(card, lambda: host.wait([host.send(
                "authenticate", {"certificateId": certificate_id, "challengeNonce": NONCE,
                                 "origin": ORIGIN, "pin": PIN})])))
            host.close()
            # The host listed everything (cacbridge-host list); then a browser loads the module.
            env = dict(os.environ, XDG_CACHE_HOME=cache)
            subprocess.run([HOST, "list"], env=env, capture_output=True, check=True)
            add("PKCS#11 module load to certificate list, card already read by the host",
                timed(card, lambda: subprocess.run(
                    ["pkcs11-tool", "--module", MODULE, "-O"], env=env,
                    capture_output=True, check=True)))
        shutil.rmtree(cache)

        with Card(delay) as card:
            cache = tempfile.mkdtemp()
            host = Host(cache)
            add("Register click to PIN window, card freshly inserted, no prefetch",
                timed(card, host.window))
            host.close()
            shutil.rmtree(cache)
        with Card(delay) as card:
            cache = tempfile.mkdtemp()
            env = dict(os.environ, XDG_CACHE_HOME=cache)
            add("PKCS#11 module load to certificate list, cold",
                timed(card, lambda: subprocess.run(
                    ["pkcs11-tool", "--module", MODULE, "-O"], env=env,
                    capture_output=True, check=True)))
            shutil.rmtree(cache)
        with Card(delay) as card, tempfile.TemporaryDirectory() as d:
            add("CAC Bridge module: load, login, one RSA-2048 signature (pkcs11-tool)",
                timed(card, lambda: subprocess.run(sign_with(MODULE, d), capture_output=True,
                                                   check=True,
                                                   env=dict(os.environ, XDG_CACHE_HOME=d))))
        if before:
            with Card(delay) as card:
                cache = tempfile.mkdtemp()
                host = Host(cache, before)
                add("Before: Register click to PIN window (status, then every certificate)",
                    timed(card, host.window_before))
                host.close()
                shutil.rmtree(cache)
        with Card(delay) as card:
            add("OpenSC pkcs15-tool --list-certificates, cold",
                timed(card, lambda: run_tool(["pkcs15-tool", "--reader", "0",
                                              "--list-certificates"])))
        with Card(delay) as card:
            add("OpenSC pkcs11-tool -O (module load to object list), cold",
                timed(card, lambda: run_tool(["pkcs11-tool", "--module", OPENSC, "-O"])))
        with Card(delay) as card, tempfile.TemporaryDirectory() as d:
            add("OpenSC module: load, login, one RSA-2048 signature (pkcs11-tool)",
                timed(card, lambda: run_tool(sign_with(OPENSC, d))))
    return rows


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--delays", default="0,30", help="ms per APDU, comma separated")
    parser.add_argument("--before", help="a cacbridge-host built before this work, for its row")
    args = parser.parse_args()
    for path in (HOST, MODULE, VIRTUAL_PIV, GOLDEN):
        if not os.path.exists(path):
            sys.exit(f"{path} missing: see the usage at the top of this script")
    subprocess.run(["pkill", "-f", "target/debug/virtual-piv"], check=False)
    delays = [int(d) for d in args.delays.split(",")]
    results = {delay: measure(delay, args.runs, args.before) for delay in delays}
    header = " | ".join(f"{d} ms/APDU: APDUs, median" for d in delays)
    print(f"| Path ({args.runs} runs) | {header} |")
    print("|---|" + "---|" * len(delays))
    for name in results[delays[0]]:
        cells = []
        for delay in delays:
            samples = results[delay][name]
            counts = sorted({n for n, _ in samples})
            count = str(counts[0]) if len(counts) == 1 else f"{counts[0]}-{counts[-1]}"
            median = statistics.median(t for _, t in samples) * 1000
            cells.append(f"{count}, {median:.0f} ms")
        print(f"| {name} | {' | '.join(cells)} |")


if __name__ == "__main__":
    main()
