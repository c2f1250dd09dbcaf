#!/usr/bin/env python3
"""Runs a command and SIGKILLs it at a chosen moment, for the crash tests.

  kill_at.py --after-ms N -- CMD...            kill N ms after the start
  kill_at.py --when-new GLOB [--root DIR] -- CMD...
                                               kill as soon as a path matching GLOB (relative
                                               to DIR) appears that did not exist at the start

With --when-new the process is stopped (SIGSTOP) the moment the path is seen, the repository
state is recorded while it cannot change, then it is killed; so a window of a few
milliseconds, such as the one between the last object's rename and the manifest's, is hit
reliably. Prints one JSON line: {"killed": bool, "elapsed_ms": float, "exit": int or null,
"seen": path or null, "manifests_at_kill": [...]}; exits 0 unless the command could not run.
"""
import argparse
import glob
import json
import os
import signal
import subprocess
import sys
import time


def matches(root, pattern):
    return set(glob.glob(os.path.join(root, pattern)))


def main():
    ap = argparse.ArgumentParser()
    g = ap.add_mutually_exclusive_group(required=True)
    g.add_argument("--after-ms", type=float)
    g.add_argument("--when-new")
    ap.add_argument("--root", default=".")
    ap.add_argument("--manifests", default="*/snapshots/*.manifest",
                    help="glob (under --root) recorded at the moment of the kill")
    ap.add_argument("--timeout", type=float, default=120)
    ap.add_argument("cmd", nargs=argparse.REMAINDER)
    a = ap.parse_args()
    cmd = a.cmd[1:] if a.cmd and a.cmd[0] == "--" else a.cmd
    if not cmd:
        ap.error("no command")

    before = matches(a.root, a.when_new) if a.when_new else set()
    devnull = open(os.devnull, "wb")
    t0 = time.monotonic()
    p = subprocess.Popen(cmd, stdout=devnull, stderr=devnull)
    result = {"killed": False, "elapsed_ms": None, "exit": None, "seen": None,
              "manifests_at_kill": None}
    deadline = t0 + a.timeout
    while True:
        rc = p.poll()
        if rc is not None:
            result["exit"] = rc
            break
        now = time.monotonic()
        fire = False
        if a.after_ms is not None:
            left = t0 + a.after_ms / 1000.0 - now
            if left <= 0:
                fire = True
            else:
                time.sleep(min(left, 0.002))
        else:
            new = matches(a.root, a.when_new) - before
            if new:
                fire = True
                result["seen"] = os.path.relpath(sorted(new)[0], a.root)
            else:
                time.sleep(0.0002)
        if fire:
            os.kill(p.pid, signal.SIGSTOP)
            result["elapsed_ms"] = round((time.monotonic() - t0) * 1000, 1)
            result["manifests_at_kill"] = sorted(
                os.path.relpath(m, a.root) for m in matches(a.root, a.manifests))
            os.kill(p.pid, signal.SIGKILL)
            p.wait()
            result["killed"] = True
            result["exit"] = p.returncode
            break
        if now > deadline:
            p.kill()
            p.wait()
            print(json.dumps(dict(result, error="timeout")))
            return 1
    if result["elapsed_ms"] is None:
        result["elapsed_ms"] = round((time.monotonic() - t0) * 1000, 1)
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
