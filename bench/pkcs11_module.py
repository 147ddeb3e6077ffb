#!/usr/bin/env python3
"""APDUs and time through a PKCS#11 module: CAC Bridge's next to OpenSC's, on the same fresh
virtual card (golden card "doe"), each driven by OpenSC's pkcs11-tool.

Not a test: a measurement to rerun.

    tests/harness/testbed-setup && cargo build --release -p cacbridge-pkcs11
    python3 bench/pkcs11_module.py [--runs 3]

Rows: module load to the full object list (after login, so private keys are listed too), and
one signature after login (load, login, sign). APDUs are counted by pcscd itself (`--apdu`
log), as bench/card_listing.py does; it restarts pcscd with APDU logging.
"""
import argparse
import os
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from card_listing import ROOT, Card, Pcscd, measure_command, print_table  # noqa: E402

OURS = os.path.join(ROOT, "target", "release", "libcacbridge_pkcs11.so")
OPENSC = "/usr/lib/x86_64-linux-gnu/opensc-pkcs11.so"
PIN = "123456"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    if not os.path.exists(OURS):
        sys.exit(f"{OURS} missing: see the usage at the top of this script")
    data = tempfile.NamedTemporaryFile(delete=False)
    data.write(b"a TLS handshake transcript hash")
    data.close()
    subprocess.run(["pkill", "-f", "target/debug/virtual-piv"], check=False)
    log = tempfile.NamedTemporaryFile(prefix="pcscd-apdu-", suffix=".log", delete=False).name
    pcscd = Pcscd(log)
    rows = {}
    for name, module in (("CAC Bridge", OURS), ("OpenSC 0.23", OPENSC)):
        listing = []
        signing = []
        for _ in range(args.runs):
            with Card():
                listing.append(measure_command(
                    pcscd, ["pkcs11-tool", "--module", module, "--login", "--pin", PIN, "-O"]))
            with Card():
                signing.append(measure_command(
                    pcscd, ["pkcs11-tool", "--module", module, "--login", "--pin", PIN, "--sign",
                            "--id", "01", "-m", "SHA256-RSA-PKCS", "-i", data.name,
                            "-o", os.devnull]))
        rows[f"{name}: load, login, list every object"] = listing
        rows[f"{name}: load, login, one RSA-2048 signature"] = signing
    pcscd.proc.terminate()
    os.unlink(data.name)
    print_table(f"pkcs11-tool ({args.runs} runs, fresh card each)", rows, log)

if __name__ == "__main__":
    main()
