#!/usr/bin/env python3
"""Lint and render a Helm chart with the real Helm v4 SDK (PyPI helm-python-sdk), for tests.

Reads one JSON request on stdin and writes one JSON answer on stdout. Assertions live in the
Rust tests (tests/helm_chart.rs); this script only drives Helm and parses its YAML output.

Requests:
  {"op": "lint", "chart": DIR, "values": {...}, "namespace": NS, "strict": true}
      -> {"ok": true, "report": <helm lint report>}
  {"op": "render", "chart": DIR, "values": {...}, "name": RELEASE, "namespace": NS}
      -> {"ok": true, "objects": [{"template": PATH, "object": {...}}], "notes": TEXT,
          "crds": [{"file": NAME, "object": {...}}]}
A Helm error (bad values, a template's `fail`) answers {"ok": false, "error": TYPE, "message": TEXT}.
"""

from __future__ import annotations

import json
import sys
from typing import Any

import yaml

import helm_python as helm


def _documents(text: str) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(text) if doc is not None]


def lint(request: dict[str, Any]) -> dict[str, Any]:
    report = helm.lint(
        request["chart"],
        request.get("values"),
        strict=request.get("strict", True),
        namespace=request.get("namespace"),
    )
    return {"ok": True, "report": report}


def render(request: dict[str, Any]) -> dict[str, Any]:
    with helm.Chart.load(request["chart"]) as chart:
        rendered = chart.render(
            request.get("values") or {},
            name=request["name"],
            namespace=request["namespace"],
            is_install=True,
        )
        crd_files = chart.crds
    objects: list[dict[str, Any]] = []
    notes = ""
    for template in sorted(rendered):
        text = rendered[template]
        if template.endswith("NOTES.txt"):
            notes = text
            continue
        objects.extend({"template": template, "object": doc} for doc in _documents(text))
    crds = [
        {"file": crd["filename"], "object": doc}
        for crd in crd_files
        for doc in _documents(crd["data"])
    ]
    return {"ok": True, "objects": objects, "notes": notes, "crds": crds}


def main() -> int:
    request = json.load(sys.stdin)
    handlers = {"lint": lint, "render": render}
    handler = handlers.get(request.get("op"))
    if handler is None:
        print(f"unknown op {request.get('op')!r}", file=sys.stderr)
        return 2
    try:
        answer = handler(request)
    except helm.HelmError as err:
        answer = {"ok": False, "error": type(err).__name__, "message": str(err)}
    json.dump(answer, sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
