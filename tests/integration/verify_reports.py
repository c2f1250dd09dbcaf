#!/usr/bin/env python3
"""Checks the reports of one `snapback verify --json --junit FILE` run (issue #7), for the
verify tests (verify.sh, sftp_verify.sh, verify_db.sh).

  verify_reports.py JSON_FILE JUNIT_FILE [--ok] [--snapshot ID] [--failed NAME]...
                    [--failed-text TEXT]... [--run-error TEXT] [--tests N] [--probe-failed SQL]...
                    [--probe-ok SQL]...

The JSON must parse and agree with itself (ok, failed); the JUnit XML must be a <testsuites>
of <testsuite>s of <testcase>s whose tests/failures counts equal the testcases and <failure>
elements in them. Then:
  --ok              nothing failed, in either report
  --snapshot ID     the failure is in snapshot ID (its JSON entry, its testsuite)
  --failed NAME     exactly the objects whose names end with one of NAME failed (a manifest
                    failure: NAME is the manifest, reported as the snapshot's error)
  --failed-text T   each failure message (JSON error, JUnit failure message) contains T
  --run-error T     the run itself failed (no snapshot): JSON error and a failing 'repository'
                    testcase, both containing T
  --tests N         the JUnit report has N testcases
  --probe-ok SQL / --probe-failed SQL
                    an SQL probe with this query passed / failed (JSON probes, JUnit testcases
                    of class snapback.verify.sql_probe)
Prints a one-line summary; exits 1 with the reasons when something does not hold.
"""
import argparse
import json
import sys
import xml.etree.ElementTree as ET

ap = argparse.ArgumentParser()
ap.add_argument("json_file")
ap.add_argument("junit_file")
ap.add_argument("--ok", action="store_true")
ap.add_argument("--snapshot")
ap.add_argument("--failed", action="append", default=[])
ap.add_argument("--failed-text", action="append", default=[])
ap.add_argument("--run-error")
ap.add_argument("--tests", type=int)
ap.add_argument("--probe-ok", action="append", default=[])
ap.add_argument("--probe-failed", action="append", default=[])
a = ap.parse_args()

problems = []


def need(cond, what):
    if not cond:
        problems.append(what)


# --- JSON ---
text = open(a.json_file).read()
try:
    j = json.loads(text)
except ValueError as e:
    print("the --json output does not parse: %s\n%s" % (e, text[:2000]), file=sys.stderr)
    sys.exit(1)
need(isinstance(j.get("snapshots"), list), "JSON: no snapshots array")
snaps = j.get("snapshots", [])
failed_snaps = [s for s in snaps if not s["ok"]]
need(j.get("failed") == len(failed_snaps), "JSON: failed=%r but %d snapshot(s) are not ok" % (j.get("failed"), len(failed_snaps)))
need(j.get("ok") == (not failed_snaps and "error" not in j), "JSON: ok=%r does not agree" % j.get("ok"))
json_failures = []  # (snapshot id, name, message)
for s in snaps:
    bad = [o for o in s["objects"] if not o["ok"]]
    badp = [p for p in s.get("probes", []) if not p["ok"]]
    if "error" in s:
        json_failures.append((s["id"], "manifest", s["error"]))
    for o in bad:
        need(o.get("error"), "JSON: failed object %s has no error" % o["name"])
        json_failures.append((s["id"], o["name"], o.get("error", "")))
    for p in badp:
        need(p.get("error"), "JSON: failed probe %s has no error" % p["sql"])
        json_failures.append((s["id"], "probe " + p["sql"], p.get("error", "")))
    need(s["ok"] == (not bad and not badp and "error" not in s), "JSON: snapshot %s ok=%r does not agree with its objects" % (s["id"], s["ok"]))
    for o in s["objects"]:
        need(not (o["skipped"] and not o["ok"]), "JSON: %s skipped but not ok" % o["name"])

# --- JUnit ---
try:
    root = ET.parse(a.junit_file).getroot()
except (ET.ParseError, OSError) as e:
    print("the --junit report does not parse: %s" % e, file=sys.stderr)
    sys.exit(1)
need(root.tag == "testsuites", "JUnit: root is <%s>, not <testsuites>" % root.tag)
all_cases, junit_failures = [], []
for suite in root:
    need(suite.tag == "testsuite", "JUnit: <%s> under <testsuites>" % suite.tag)
    cases = list(suite)
    need(all(c.tag == "testcase" for c in cases), "JUnit: a child of a testsuite is not a testcase")
    fails = [c for c in cases if c.find("failure") is not None]
    need(int(suite.get("tests", -1)) == len(cases), "JUnit: testsuite %r tests=%s, has %d testcases" % (suite.get("name"), suite.get("tests"), len(cases)))
    need(int(suite.get("failures", -1)) == len(fails), "JUnit: testsuite %r failures=%s, has %d failing testcases" % (suite.get("name"), suite.get("failures"), len(fails)))
    for c in cases:
        need(c.get("name"), "JUnit: a testcase without a name")
        f = c.find("failure")
        if f is not None:
            need(f.get("message"), "JUnit: failure of %s without a message" % c.get("name"))
            junit_failures.append((suite.get("name", ""), c.get("name"), c.get("classname"), f.get("message", "")))
    all_cases += cases
need(int(root.get("tests", -1)) == len(all_cases), "JUnit: testsuites tests=%s, has %d testcases" % (root.get("tests"), len(all_cases)))
need(int(root.get("failures", -1)) == len(junit_failures), "JUnit: testsuites failures=%s, has %d failing testcases" % (root.get("failures"), len(junit_failures)))
if a.tests is not None:
    need(len(all_cases) == a.tests, "JUnit: %d testcases, expected %d" % (len(all_cases), a.tests))
need(len(junit_failures) == len(json_failures) + (1 if "error" in j else 0), "JUnit has %d failures, JSON %d" % (len(junit_failures), len(json_failures)))

# --- expectations ---
if a.ok:
    need(j.get("ok") is True and not json_failures and not junit_failures, "expected no failure")
if a.snapshot:
    need(any(s["id"] == a.snapshot for s in failed_snaps), "JSON: snapshot %s is not reported failed" % a.snapshot)
    need(all(s["id"] == a.snapshot for s in failed_snaps), "JSON: other snapshots failed too: %s" % [s["id"] for s in failed_snaps])
    need(all(a.snapshot in f[0] for f in junit_failures), "JUnit: a failure outside testsuite 'snapshot %s'" % a.snapshot)
for name in a.failed:
    if name.endswith(".manifest"):
        need(any(f[1] == "manifest" and name in f[2] for f in json_failures), "JSON: no snapshot error naming %s" % name)
        need(any(f[1] == "manifest" and name in f[3] for f in junit_failures), "JUnit: no failing 'manifest' testcase naming %s" % name)
    else:
        need(any(f[1].endswith(name) for f in json_failures), "JSON: object %s is not reported failed" % name)
        need(any(f[1].endswith(name) for f in junit_failures), "JUnit: no failing testcase %s" % name)
if a.failed:
    others = [f for f in json_failures if not any(f[1].endswith(n) or (f[1] == "manifest" and n.endswith(".manifest")) for n in a.failed)]
    need(not others, "JSON: unexpected failures: %s" % others)
for t in a.failed_text:
    need(all(t in f[2] for f in json_failures), "JSON: a failure message lacks %r: %s" % (t, [f[2] for f in json_failures]))
    need(all(t in f[3] for f in junit_failures), "JUnit: a failure message lacks %r" % t)
if a.run_error:
    need(j.get("ok") is False and a.run_error in j.get("error", ""), "JSON: no run error containing %r" % a.run_error)
    need(any(f[1] == "repository" and a.run_error in f[3] for f in junit_failures), "JUnit: no failing 'repository' testcase containing %r" % a.run_error)
probes = [p for s in snaps for p in s.get("probes", [])]
for sql in a.probe_ok:
    need(any(p["sql"] == sql and p["ok"] and not p["skipped"] for p in probes), "JSON: no passing probe %r" % sql)
    need(any(c.get("classname") == "snapback.verify.sql_probe" and c.get("name", "").endswith(sql) and c.find("failure") is None and c.find("skipped") is None for c in all_cases), "JUnit: no passing probe testcase %r" % sql)
for sql in a.probe_failed:
    need(any(p["sql"] == sql and not p["ok"] for p in probes), "JSON: no failed probe %r" % sql)
    need(any(f[2] == "snapback.verify.sql_probe" and f[1].endswith(sql) for f in junit_failures), "JUnit: no failing probe testcase %r" % sql)

if problems:
    print("reports %s / %s:" % (a.json_file, a.junit_file), file=sys.stderr)
    for p in problems:
        print("  " + p, file=sys.stderr)
    print("  JSON: " + text[:1500], file=sys.stderr)
    sys.exit(1)
print("reports ok: %d testcase(s), %d failure(s)" % (len(all_cases), len(junit_failures)))
