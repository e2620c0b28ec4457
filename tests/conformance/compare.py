"""Compare conformance results through mcp-edge with results against a replica directly.

    python compare.py DIRECT_DIR EDGE_DIR [--lifecycle] [--no-warnings] [--all-pass PREFIX]
                      [--skip SCENARIO]...

Fails when a scenario has a failing check through the edge that has none directly; with
--lifecycle, also when server-session-lifecycle did not run its checks (a skip is not a pass);
with --no-warnings, when any check through the edge ended as a warning (a SHOULD not met); with
--all-pass PREFIX, when a check of a scenario named PREFIX… failed either way, or none ran (for
scenarios the suite does not score, such as the tasks extension's, whose failures would not
fail the run). --skip SCENARIO leaves a scenario out of the comparison (the caller says why).
Prints one line per difference, then a summary.
"""

import json
import pathlib
import re
import sys

# Result folders are named server-<scenario>-<ISO timestamp>.
TIMESTAMP = re.compile(r"-\d{4}-\d{2}-\d{2}T[\d-]+Z?$")


def failing(results: pathlib.Path) -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    for checks in results.glob("server-*/checks.json"):
        scenario = TIMESTAMP.sub("", checks.parent.name.removeprefix("server-"))
        failed = {c["id"] for c in json.loads(checks.read_text()) if c["status"] == "FAILURE"}
        out.setdefault(scenario, set()).update(failed)
    return out


def main() -> int:
    direct, edge = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2])
    direct_failing, edge_failing = failing(direct), failing(edge)
    skipped = {sys.argv[i + 1] for i, a in enumerate(sys.argv[:-1]) if a == "--skip"}
    for scenario in skipped:
        edge_failing.pop(scenario, None)
        print(f"{scenario}: not compared (--skip)")
    problems = []
    for scenario, checks in sorted(edge_failing.items()):
        new = checks - direct_failing.get(scenario, set())
        if new:
            problems.append(f"{scenario}: fails through mcp-edge but not directly: {sorted(new)}")
    if "--lifecycle" in sys.argv:
        runs = list(edge.glob("server-server-session-lifecycle-*/checks.json"))
        checks = [c for r in runs for c in json.loads(r.read_text())]
        passed = [c["id"] for c in checks if c["status"] == "SUCCESS"]
        if not passed or any(c["status"] == "SKIPPED" for c in checks):
            problems.append(f"server-session-lifecycle did not run its checks: {[(c['id'], c['status']) for c in checks]}")
        else:
            print(f"server-session-lifecycle ran and passed: {passed}")
    if "--no-warnings" in sys.argv:
        for checks in sorted(edge.glob("server-*/checks.json")):
            for c in json.loads(checks.read_text()):
                if c["status"] == "WARNING":
                    problems.append(f"{checks.parent.name}: warning {c['id']}: {c.get('errorMessage', '')}")
    if "--all-pass" in sys.argv:
        prefix = sys.argv[sys.argv.index("--all-pass") + 1]
        for label, results in (("directly", direct_failing), ("through mcp-edge", edge_failing)):
            ran = {s: f for s, f in results.items() if s.startswith(prefix)}
            if not ran:
                problems.append(f"no {prefix}* scenario ran {label}")
            for scenario, checks in sorted(ran.items()):
                if checks:
                    problems.append(f"{scenario}: fails {label}: {sorted(checks)}")
        if not any(p.startswith(("no ", prefix)) for p in problems):
            print(f"every {prefix}* scenario passed, directly and through mcp-edge")
    for p in problems:
        print(p)
    print(f"compare: {len(edge_failing)} scenarios through the edge, {len(problems)} problems")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
