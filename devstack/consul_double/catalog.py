"""Catalog tables (nodes, services, checks) with Consul's index bookkeeping."""

from collections.abc import Mapping
from typing import Any

from devstack.consul_double.blocking import Indexes
from devstack.consul_double.errors import HttpError
from devstack.consul_double.records import (
    CatalogNode,
    CatalogService,
    CheckStatus,
    HealthCheck,
    node_id_for,
)


class CatalogTables:
    """Nodes, service instances and checks; every mutation bumps the indexes Consul would bump."""

    def __init__(self, indexes: Indexes) -> None:
        """Start with empty tables sharing ``indexes``."""
        self.indexes = indexes
        self.nodes: dict[str, CatalogNode] = {}
        self.services: dict[str, dict[str, CatalogService]] = {}
        self.checks: dict[str, dict[str, HealthCheck]] = {}

    def _bump_services_of_node(self, index: int, node: str) -> None:
        """A node-level change is visible in every service query of that node's services."""
        for service in self.services.get(node, {}).values():
            self.indexes.bump_service(service.name, index)

    def ensure_node(
        self,
        index: int,
        name: str,
        address: str,
        datacenter: str,
        meta: dict[str, str],
        node_id: str | None = None,
    ) -> None:
        """Create or update a node; an identical node is left untouched."""
        existing = self.nodes.get(name)
        new_id = node_id or (existing.id if existing else node_id_for(name))
        if existing is not None:
            same = (existing.address, existing.datacenter, existing.meta, existing.id) == (
                address,
                datacenter,
                meta,
                new_id,
            )
            if same:
                return
            existing.address, existing.datacenter, existing.meta = address, datacenter, dict(meta)
            existing.id = new_id
            existing.modify_index = index
        else:
            self.nodes[name] = CatalogNode(
                new_id, name, address, datacenter, dict(meta), index, index
            )
        self.indexes.bump_table("nodes", index)
        self.indexes.bump_node(name, index)
        self._bump_services_of_node(index, name)

    def ensure_service(
        self,
        index: int,
        node: str,
        service_id: str,
        name: str,
        tags: list[str],
        address: str,
        meta: dict[str, str],
        port: int,
    ) -> None:
        """Create or update a service instance; an identical one is left untouched."""
        instances = self.services.setdefault(node, {})
        existing = instances.get(service_id)
        if existing is not None:
            if (existing.name, existing.tags, existing.address, existing.meta, existing.port) == (
                name,
                tags,
                address,
                meta,
                port,
            ):
                return
            old_name = existing.name
            existing.name, existing.tags, existing.address = name, list(tags), address
            existing.meta, existing.port, existing.modify_index = dict(meta), port, index
            if old_name != name:
                self._service_name_gone(index, old_name)
        else:
            instances[service_id] = CatalogService(
                node, service_id, name, list(tags), address, dict(meta), port, index, index
            )
        self.indexes.bump_service(name, index)
        for table in ("services", "nodes"):
            self.indexes.bump_table(table, index)
        self.indexes.bump_node(node, index)

    def ensure_check(
        self,
        index: int,
        node: str,
        check_id: str,
        name: str,
        status: str,
        output: str,
        service_id: str = "",
        check_type: str = "",
    ) -> None:
        """Create or update a check; an identical one is left untouched."""
        checks = self.checks.setdefault(node, {})
        service = self.services.get(node, {}).get(service_id) if service_id else None
        service_name = service.name if service else ""
        service_tags = list(service.tags) if service else []
        existing = checks.get(check_id)
        if existing is not None:
            if (existing.name, existing.status, existing.output, existing.service_id) == (
                name,
                status,
                output,
                service_id,
            ):
                return
            existing.name, existing.status, existing.output = name, status, output
            existing.service_id, existing.service_name = service_id, service_name
            existing.service_tags, existing.modify_index = service_tags, index
        else:
            checks[check_id] = HealthCheck(
                node,
                check_id,
                name,
                status,
                output,
                index,
                index,
                service_id,
                service_name,
                service_tags,
                check_type,
            )
        self.indexes.bump_table("checks", index)
        if service is not None:
            self.indexes.bump_service(service.name, index)
        else:
            self._bump_services_of_node(index, node)

    def delete_check(self, index: int, node: str, check_id: str) -> None:
        """Remove one check (no-op when absent)."""
        check = self.checks.get(node, {}).pop(check_id, None)
        if check is None:
            return
        self.indexes.bump_table("checks", index)
        if check.service_name:
            self.indexes.bump_service(check.service_name, index)
        else:
            self._bump_services_of_node(index, node)

    def delete_service(self, index: int, node: str, service_id: str) -> None:
        """Remove a service instance and its checks (no-op when absent)."""
        service = self.services.get(node, {}).get(service_id)
        if service is None:
            return
        for check in [c for c in self.checks.get(node, {}).values() if c.service_id == service_id]:
            self.delete_check(index, node, check.check_id)
        del self.services[node][service_id]
        for table in ("services", "nodes"):
            self.indexes.bump_table(table, index)
        self.indexes.bump_node(node, index)
        self._service_name_gone(index, service.name)

    def _service_name_gone(self, index: int, name: str) -> None:
        """After an instance left ``name``: bump its index, or record its extinction."""
        if any(s.name == name for instances in self.services.values() for s in instances.values()):
            self.indexes.bump_service(name, index)
        else:
            self.indexes.services.pop(name, None)
            self.indexes.bump_table("service_extinction", index)

    def delete_node(self, index: int, name: str) -> None:
        """Remove a node with its services and checks (no-op when absent)."""
        if name not in self.nodes:
            return
        for service_id in list(self.services.get(name, {})):
            self.delete_service(index, name, service_id)
        if self.checks.pop(name, None):
            self.indexes.bump_table("checks", index)
        self.services.pop(name, None)
        del self.nodes[name]
        self.indexes.nodes.pop(name, None)
        for table in ("nodes", "node_extinction"):
            self.indexes.bump_table(table, index)

    def lower_rows_to(self, to: int) -> None:
        """Clamp every row's Create/ModifyIndex to ``to`` (snapshot restore)."""
        rows: list[CatalogNode | CatalogService | HealthCheck] = list(self.nodes.values())
        rows += [s for instances in self.services.values() for s in instances.values()]
        rows += [c for checks in self.checks.values() for c in checks.values()]
        for row in rows:
            row.create_index = min(row.create_index, to)
            row.modify_index = min(row.modify_index, to)


def validate_registration(payload: object) -> dict[str, Any]:
    """Check a ``/v1/catalog/register`` body the way Consul does; returns it as a dict."""
    if not isinstance(payload, dict):
        raise HttpError(400, "Request decode failed: body must be a JSON object")
    if not payload.get("Node"):
        raise HttpError(400, "Must provide node")
    if not payload.get("Address") and not payload.get("SkipNodeUpdate"):
        raise HttpError(400, "Must provide address if SkipNodeUpdate is not set")
    service = payload.get("Service")
    if service is not None and (not isinstance(service, dict) or not service.get("Service")):
        raise HttpError(400, "Must provide service name with ID")
    for check in _checks_of(payload):
        status = check.get("Status") or CheckStatus.CRITICAL
        if status not in CheckStatus.ALL:
            raise HttpError(400, f"Invalid check status: {status!r}")
    return payload


def _checks_of(payload: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The ``Check`` and ``Checks`` entries of a registration body."""
    checks = [payload["Check"]] if isinstance(payload.get("Check"), dict) else []
    checks += [c for c in payload.get("Checks") or [] if isinstance(c, dict)]
    return checks


def apply_registration(
    tables: CatalogTables, index: int, payload: Mapping[str, Any], default_dc: str
) -> None:
    """Apply a validated registration body inside one write."""
    node = str(payload["Node"])
    if not payload.get("SkipNodeUpdate") or node not in tables.nodes:
        meta = {str(k): str(v) for k, v in (payload.get("NodeMeta") or {}).items()}
        datacenter = str(payload.get("Datacenter") or default_dc)
        tables.ensure_node(
            index,
            node,
            str(payload.get("Address", "")),
            datacenter,
            meta,
            str(payload["ID"]) if payload.get("ID") else None,
        )
        tagged = payload.get("TaggedAddresses")
        if isinstance(tagged, dict) and tagged:
            tables.nodes[node].tagged_addresses = {str(k): str(v) for k, v in tagged.items()}
    service = payload.get("Service")
    if isinstance(service, dict):
        name = str(service["Service"])
        tables.ensure_service(
            index,
            node,
            str(service.get("ID") or name),
            name,
            [str(t) for t in service.get("Tags") or []],
            str(service.get("Address") or ""),
            {str(k): str(v) for k, v in (service.get("Meta") or {}).items()},
            int(service.get("Port") or 0),
        )
    for check in _checks_of(payload):
        name = str(check.get("Name") or check.get("CheckID") or "")
        tables.ensure_check(
            index,
            node,
            str(check.get("CheckID") or name),
            name,
            str(check.get("Status") or CheckStatus.CRITICAL),
            str(check.get("Output") or ""),
            str(check.get("ServiceID") or ""),
            str(check.get("Type") or ""),
        )
