#!/usr/bin/env python3
"""Parse PromQL expressions with PyPI promql-parser (bindings of GreptimeTeam's Rust promql-parser)
and list the metric names each one selects, for tests/alert_rules.rs.

Reads a JSON list of expressions on stdin; writes {"ok": true, "names": [[name, ...], ...]}, one list
per expression, or {"ok": false, "index": I, "error": TEXT} for the first that does not parse or
selects series without naming a metric. Grafana's `$__rate_interval` is read as `5m`.
"""

from __future__ import annotations

import json
import sys

import promql_parser


def names(expression: str) -> list[str]:
    tree = promql_parser.parse(expression.replace("$__rate_interval", "5m"))
    found: list[str] = []

    def visit(node: object) -> bool:
        if isinstance(node, promql_parser.VectorSelector):
            if not node.name:
                # A selector such as {__name__=~"..."} cannot be checked against an exposition.
                raise ValueError(f"selector without a metric name: {node}")
            found.append(node.name)
        return True

    promql_parser.walk(tree, visit, None)
    return sorted(set(found))


def main() -> int:
    expressions = json.load(sys.stdin)
    result: list[list[str]] = []
    for index, expression in enumerate(expressions):
        try:
            result.append(names(expression))
        except Exception as err:  # the parser raises plain ValueError/TypeError
            json.dump({"ok": False, "index": index, "error": str(err)}, sys.stdout)
            return 0
    json.dump({"ok": True, "names": result}, sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
