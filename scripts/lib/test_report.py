#!/usr/bin/env python3
"""Reads the xUnit files `swift test --xunit-output` writes and reports on them.

  test_report.py count FILE...          prints "PASSED FAILED" over every test case in the files
  test_report.py failed FILE...         prints the failed test cases, one per line (suite.name)
  test_report.py repeat N DIR           the --repeat summary over DIR/run-K.xml (K = 1..N), K's own files included

swift test writes FILE for XCTest and FILE with `-swift-testing` before the extension for Swift Testing; both are
read when they exist. A missing file counts as nothing run (the phase's exit status says whether it failed).
"""
import os
import sys
import xml.etree.ElementTree as ElementTree


def companions(path):
    root, extension = os.path.splitext(path)
    return [p for p in (path, f"{root}-swift-testing{extension}") if os.path.exists(p)]


def cases(paths):
    """(name, failed) for every test case in the files and their Swift Testing companions."""
    result = []
    for path in paths:
        for existing in companions(path):
            try:
                tree = ElementTree.parse(existing)
            except ElementTree.ParseError as error:
                print(f"test_report: cannot read {existing}: {error}", file=sys.stderr)
                continue
            for case in tree.iter("testcase"):
                name = f"{case.get('classname', '')}.{case.get('name', '')}".strip(".")
                failed = case.find("failure") is not None or case.find("error") is not None
                skipped = case.find("skipped") is not None
                if not skipped:
                    result.append((name, failed))
    return result


def main(argv):
    if len(argv) < 2:
        print(__doc__, file=sys.stderr)
        return 64
    command = argv[1]
    if command == "count":
        found = cases(argv[2:])
        print(sum(1 for _, failed in found if not failed), sum(1 for _, failed in found if failed))
    elif command == "failed":
        for name, failed in cases(argv[2:]):
            if failed:
                print(name)
    elif command == "repeat":
        runs, directory = int(argv[2]), argv[3]
        failures = {}
        failed_runs = 0
        for run in range(1, runs + 1):
            found = cases([os.path.join(directory, f"run-{run}.xml")])
            status_path = os.path.join(directory, f"run-{run}.status")
            status = open(status_path).read().strip() if os.path.exists(status_path) else "?"
            failed = sorted({name for name, bad in found if bad})
            passed = sum(1 for _, bad in found if not bad)
            if failed or status != "0":
                failed_runs += 1
            note = f"exit {status}" + ("" if status == "0" or failed else " (no failed test case recorded: a crash or timeout)")
            print(f"tailgate: run {run}: {passed} passed, {len(failed)} failed, {note}" + (": " + ", ".join(failed) if failed else ""))
            for name in failed:
                failures[name] = failures.get(name, 0) + 1
        print(f"tailgate: {failed_runs} of {runs} runs failed")
        for name, count in sorted(failures.items(), key=lambda item: -item[1]):
            print(f"tailgate:   {count}x {name}")
        return 1 if failed_runs else 0
    else:
        print(__doc__, file=sys.stderr)
        return 64
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
