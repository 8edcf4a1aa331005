"""The series nodeview exports to Prometheus, and a check that PromQL names only those."""

import importlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from prometheus_client.metrics import MetricWrapperBase

from services import metrics

promql_parser: Any = importlib.import_module("promql_parser")

SAMPLE_SUFFIXES = {
    "counter": ("_total", "_created"),
    "gauge": ("",),
    "histogram": ("_bucket", "_sum", "_count", "_created"),
}
"""Sample names ``prometheus_client`` writes for each metric type (after the base name)."""

TARGET_LABELS = frozenset({"job", "instance", "namespace", "pod", "service", "container"})
"""Labels Prometheus (and the Prometheus Operator) add to every scraped series."""

PROMETHEUS_SERIES: dict[str, frozenset[str]] = {"up": frozenset()}
"""Series Prometheus itself writes for every target; they carry only the target labels."""

ROLE_JOBS = frozenset({"nodeview-api", "nodeview-enricher", "nodeview-relay"})
"""The ``job`` of each role's targets (``jobLabel: app.kubernetes.io/name`` on Kubernetes)."""

_SAME_LABELS = {"rate", "irate", "increase", "delta", "idelta", "deriv", "abs", "clamp_min"}


def exported() -> dict[str, frozenset[str]]:
    """Every sample name the services export, with the labels the code gives it."""
    names: dict[str, frozenset[str]] = {}
    for value in vars(metrics).values():
        if isinstance(value, MetricWrapperBase):
            labels = frozenset(value._labelnames)
            for suffix in SAMPLE_SUFFIXES[str(value._type)]:
                extra = {"le"} if suffix == "_bucket" else set()
                names[value._name + suffix] = labels | extra
    return names


def selectors(expression: str) -> list[Any]:
    """Every vector selector inside a PromQL expression (``ValueError`` if it does not parse)."""
    found: list[Any] = []

    def visit(node: Any) -> None:
        if isinstance(node, promql_parser.VectorSelector):
            found.append(node)

    promql_parser.walk(promql_parser.parse(expression), visit)
    return found


@dataclass
class LabelCheck:
    """Walks one parsed expression: what labels each part yields, and every name that is wrong."""

    series: dict[str, frozenset[str]]
    problems: list[str] = field(default_factory=list)

    def labels(self, node: Any) -> frozenset[str]:
        """The labels ``node``'s result carries (empty for a scalar or a string)."""
        handler: Callable[[Any], frozenset[str]] | None = getattr(
            self, "_" + type(node).__name__, None
        )
        if handler is None:
            return frozenset()
        return handler(node)

    def _VectorSelector(self, node: Any) -> frozenset[str]:  # noqa: N802
        known = self.series.get(node.name)
        if known is None:
            self.problems.append(f"{node.name} is not exported")
            return TARGET_LABELS
        available = known | TARGET_LABELS
        for matcher in node.matchers.matchers:
            if matcher.name not in available:
                self.problems.append(f"label {matcher.name} is not on {node.name}")
        return available

    def _MatrixSelector(self, node: Any) -> frozenset[str]:  # noqa: N802
        return self.labels(node.vector_selector)

    def _SubqueryExpr(self, node: Any) -> frozenset[str]:  # noqa: N802
        return self.labels(node.expr)

    _ParenExpr = _SubqueryExpr
    _UnaryExpr = _SubqueryExpr

    def _AggregateExpr(self, node: Any) -> frozenset[str]:  # noqa: N802
        inner = self.labels(node.expr)
        if node.param is not None:
            self.labels(node.param)
        if node.modifier is None:
            return frozenset()
        named = frozenset(node.modifier.labels)
        self._require(named, inner, f"{node.op} by/without")
        if node.modifier.type == promql_parser.AggModifierType.By:
            return named
        return inner - named

    def _Call(self, node: Any) -> frozenset[str]:  # noqa: N802
        args = [self.labels(arg) for arg in node.args]
        name = node.func.name
        if name == "histogram_quantile":
            self._require(frozenset({"le"}), args[1], "histogram_quantile")
            return args[1] - {"le"}
        if name == "label_replace":
            return args[0] | {node.args[1].val}
        if name in {"scalar", "time", "vector"}:
            return frozenset()
        return frozenset().union(*args)

    def _BinaryExpr(self, node: Any) -> frozenset[str]:  # noqa: N802
        lhs, rhs = self.labels(node.lhs), self.labels(node.rhs)
        matching = node.modifier.matching if node.modifier is not None else None
        if matching is not None and matching.type == promql_parser.LabelModifierType.Include:
            self._require(frozenset(matching.labels), lhs & rhs, f"{node.op} on()")
        return lhs or rhs

    def _require(self, named: Iterable[str], available: frozenset[str], where: str) -> None:
        for label in named:
            if label not in available:
                self.problems.append(f"{where}: label {label} is not on its operand")


def problems(expression: str) -> list[str]:
    """What in ``expression`` names a series or a label that nodeview does not export."""
    check = LabelCheck({**exported(), **PROMETHEUS_SERIES})
    check.labels(promql_parser.parse(expression))
    return check.problems


def job_problems(expression: str) -> list[str]:
    """Selectors of ``expression`` without a ``job`` matcher naming only nodeview's roles.

    The matcher is ``job="<role job>"`` or ``job=~"<role job>|<role job>"``: an alternation of
    literal names, so that no other job's series can match it in a shared Prometheus.
    """
    found = []
    for selector in selectors(expression):
        jobs = [m for m in selector.matchers.matchers if m.name == "job"]
        if not jobs:
            found.append(f"{selector.name} has no job matcher")
        for matcher in jobs:
            names: set[str] = set()
            if matcher.op == promql_parser.MatchOp.Equal:
                names = {matcher.value}
            elif matcher.op == promql_parser.MatchOp.Re:
                names = set(matcher.value.split("|"))
            if not names or not names <= ROLE_JOBS:
                found.append(f"{selector.name}: job {matcher.value!r} is no nodeview role")
    return found
