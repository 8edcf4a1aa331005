"""Unit tests of the internal UI reads: service summaries, node dump and their index."""

from typing import Any

from devstack.consul_double import ConsulState
from devstack.consul_double.filter_fields import CHECK_SERVICE_NODE, NODE_INFO
from devstack.consul_double.filtering import compile_filter
from devstack.consul_double.queries import check_service_node
from devstack.consul_double.ui_queries import summarize, ui_nodes, ui_services


def cluster() -> ConsulState:
    """One server and two clients; ``web`` runs twice on the first client and once on the other."""
    state = ConsulState()
    state.join_node("consul-server-1", "127.0.1.1", server=True)
    state.join_node("prom-a-01", "127.10.0.10", meta={"site": "a"})
    state.join_node("prom-b-01", "127.11.0.10", meta={"site": "b"})
    state.register_service("prom-a-01", "web-1", "web", tags=("z", "x"), port=80)
    state.register_service("prom-a-01", "web-2", "web", tags=("x", "y"), port=81)
    state.register_service("prom-b-01", "web-3", "web", port=80)
    state.register_check("prom-a-01", "web-1-http", "HTTP", "warning", service_id="web-1")
    state.register_check("prom-a-01", "web-2-http", "HTTP", "critical", service_id="web-2")
    return state


def entry(node: str, service: dict[str, Any], checks: list[tuple[str, str]]) -> dict[str, Any]:
    """A minimal ``CheckServiceNode``."""
    return {
        "Node": {"Node": node, "Datacenter": "dc1"},
        "Service": {"Tags": [], "Meta": {}, "Connect": {}, **service},
        "Checks": [{"CheckID": cid, "Status": status} for cid, status in checks],
    }


def test_summary_counts_instances_nodes_tags_and_unique_checks() -> None:
    """Instances add up, nodes and tags are sorted and unique, node checks count once."""
    web = {s["Name"]: s for s in ui_services(cluster()).body}["web"]
    assert web["InstanceCount"] == 3
    assert web["Nodes"] == ["prom-a-01", "prom-b-01"]
    assert web["Tags"] == ["x", "y", "z"]
    assert (web["ChecksPassing"], web["ChecksWarning"], web["ChecksCritical"]) == (2, 1, 1)
    assert (web["Datacenter"], web["ExternalSources"], web["GatewayConfig"]) == ("dc1", None, {})


def test_summaries_are_sorted_by_name_and_untagged_services_have_null_tags() -> None:
    """Names sort bytewise; a service without tags reports ``null`` tags, as Consul does."""
    names = [s["Name"] for s in ui_services(cluster()).body]
    assert names == ["consul", "web"]
    assert ui_services(cluster()).body[0]["Tags"] is None


def test_kind_and_external_sources_come_from_the_instances() -> None:
    """A kind is reported when set, external sources once each in order of appearance."""
    dump = [
        entry("n1", {"Service": "gw", "Kind": "mesh-gateway"}, []),
        entry("n1", {"Service": "k8s", "Meta": {"external-source": "kubernetes"}}, []),
        entry("n2", {"Service": "k8s", "Meta": {"external-source": "nomad"}}, []),
        entry("n3", {"Service": "k8s", "Meta": {"external-source": "kubernetes"}}, []),
    ]
    gateway, k8s = summarize(dump)
    assert list(gateway)[:2] == ["Kind", "Name"]
    assert gateway["Kind"] == "mesh-gateway"
    assert "Kind" not in k8s
    assert k8s["ExternalSources"] == ["kubernetes", "nomad"]


def test_filter_selects_instances_before_summarizing() -> None:
    """Only instances that pass the filter are summarized."""
    keep = compile_filter('Service.ID != "web-2" and Node.Meta.site == a', CHECK_SERVICE_NODE)
    (web,) = ui_services(cluster(), keep).body
    assert (web["InstanceCount"], web["Nodes"], web["Tags"]) == (1, ["prom-a-01"], ["x", "z"])


def test_node_dump_lists_every_node_with_lists_and_filters() -> None:
    """Each node carries its services and checks; the filter selects nodes."""
    state = cluster()
    state.join_node("bare-01", "127.12.0.10")
    state.deregister_service("prom-b-01", "web-3")
    nodes = {n["Node"]: n for n in ui_nodes(state).body}
    assert list(nodes) == sorted(state.nodes)
    assert [s["ID"] for s in nodes["prom-a-01"]["Services"]] == ["web-1", "web-2"]
    assert [c["CheckID"] for c in nodes["prom-a-01"]["Checks"]] == [
        "serfHealth",
        "web-1-http",
        "web-2-http",
    ]
    assert nodes["prom-b-01"]["Services"] == []
    assert "Datacenter" not in nodes["bare-01"]
    keep = compile_filter("Services is empty and Checks.Status == passing", NODE_INFO)
    assert [n["Node"] for n in ui_nodes(state, keep).body] == ["bare-01", "prom-b-01"]


def test_both_dumps_index_on_the_catalog_tables_only() -> None:
    """A KV write leaves the index alone; a check change raises it."""
    state = cluster()
    before = ui_services(state).index
    assert ui_nodes(state).index == before
    state.kv_put("k", b"v")
    assert ui_services(state).index == before
    state.register_check("prom-b-01", "disk", "Disk", "passing")
    assert ui_services(state).index == ui_nodes(state).index == state.index > before


def test_the_unfiltered_summary_equals_the_one_made_from_whole_instances() -> None:
    """The unfiltered fast path summarises exactly what the full ``CheckServiceNode``s give."""
    state = cluster()
    state.register_service("prom-b-01", "ext", "ext", meta={"external-source": "k8s"}, port=9)
    whole = summarize(
        [
            check_service_node(state, svc)
            for node in sorted(state.services)
            for _, svc in sorted(state.services[node].items())
        ]
    )
    assert ui_services(state).render() == whole
