#!/usr/bin/env python3
"""Checks an Autobahn|Testsuite report (index.json) against conformance/expected.json.

    check.py [--expected FILE] [--spec FILE] [--update] REPORT/index.json [...]

Several reports (the shards of one run) are checked as one.

Every case in the report must have the behavior and close behavior that expected.json
lists for it; only OK, NON-STRICT, INFORMATIONAL and UNIMPLEMENTED may be listed. A
case that does better than listed (OK where something else is expected) is reported
but not an error. With --spec (the fuzzingclient spec that was run), every listed case
the spec selects must be in the report, so a run cut short fails too.

--update rewrites expected.json from the report (keeping the notes): for a deliberate
change only, after reading the diff, and explaining any new non-OK grade in
conformance/README.md.
"""

import argparse
import collections
import json
import re
import sys

ALLOWED = ("OK", "NON-STRICT", "INFORMATIONAL", "UNIMPLEMENTED")


def case_key(case_id):
    return tuple(int(part) for part in case_id.split("."))


def selected(patterns, case_id):
    """Autobahn's own matching: '*' is a wildcard, matched from the start of the id."""
    for pattern in patterns:
        if "*" in pattern:
            if re.match(pattern.replace(".", r"\.").replace("*", ".*"), case_id):
                return True
        elif pattern == case_id:
            return True
    return False


def load_report(path):
    with open(path) as f:
        index = json.load(f)
    if len(index) != 1:
        sys.exit(f"{path}: expected results for one agent, found {sorted(index)}")
    return next(iter(index.values()))


def write_expected(path, expected, report):
    cases = {}
    for case_id in sorted(set(expected) | set(report), key=case_key):
        if case_id not in report:
            cases[case_id] = expected[case_id]
            continue
        entry = {k: report[case_id][k] for k in ("behavior", "behaviorClose")}
        note = expected.get(case_id, {}).get("note")
        if note and entry != {"behavior": "OK", "behaviorClose": "OK"}:
            entry["note"] = note
        cases[case_id] = entry
    lines = [f"    {json.dumps(k)}: {json.dumps(v)}" for k, v in cases.items()]
    with open(path, "w") as f:
        f.write('{\n  "cases": {\n' + ",\n".join(lines) + "\n  }\n}\n")
    print(f"wrote {len(cases)} cases to {path}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("reports", nargs="+", help="the reports' index.json")
    parser.add_argument("--expected", default="conformance/expected.json")
    parser.add_argument("--spec", help="the fuzzingclient spec that produced the report")
    parser.add_argument("--update", action="store_true", help="rewrite --expected")
    args = parser.parse_args()

    report = {}
    for path in args.reports:
        shard = load_report(path)
        repeated = set(report) & set(shard)
        if repeated:
            sys.exit(f"{path}: cases also in another report: {sorted(repeated, key=case_key)}")
        report.update(shard)
    with open(args.expected) as f:
        expected = json.load(f)["cases"]
    if args.update:
        write_expected(args.expected, expected, report)
        return 0

    errors = []
    better = []
    for case_id, entry in expected.items():
        for field in ("behavior", "behaviorClose"):
            if entry.get(field) not in ALLOWED:
                errors.append(f"expected.json: {case_id} {field} {entry.get(field)!r} "
                              f"is not one of {', '.join(ALLOWED)}")

    grades = {"behavior": collections.Counter(), "behaviorClose": collections.Counter()}
    for case_id in sorted(report, key=case_key):
        result = report[case_id]
        want = expected.get(case_id)
        for field in grades:
            grades[field][result[field]] += 1
        if want is None:
            errors.append(f"{case_id}: not in expected.json "
                          f"({result['behavior']} / {result['behaviorClose']})")
            continue
        for field in grades:
            got, wanted = result[field], want[field]
            if got == wanted:
                continue
            line = (f"{case_id}: {field} {got}, expected {wanted} "
                    f"(close code {result.get('remoteCloseCode')}, {result['reportfile']})")
            (better if got == "OK" else errors).append(line)

    if args.spec:
        with open(args.spec) as f:
            spec = json.load(f)
        for case_id in sorted(expected, key=case_key):
            if (selected(spec["cases"], case_id)
                    and not selected(spec.get("exclude-cases", []), case_id)
                    and case_id not in report):
                errors.append(f"{case_id}: selected by the spec but not in the report")

    for field, label in (("behavior", "behavior"), ("behaviorClose", "close behavior")):
        counts = ", ".join(f"{n} {grade}" for grade, n in sorted(grades[field].items()))
        print(f"{label:15}: {counts}")
    for line in better:
        print(f"better than expected: {line}")
    for line in errors:
        print(f"UNEXPECTED: {line}")
    failed = {line.split(":")[0] for line in errors} - {"expected.json"}
    print(f"conformance: {len(set(report) - failed)} passed, {len(failed)} failed")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
