// The live node dashboard: one store fed by the event stream, a table, filters, counters and
// the services of the selected node.

import { followEvents } from "./events.js";
import { createNodeSelector } from "./selector.js";

const STATUSES = ["alive", "dead", "unknown"];
const HEALTH_POLL_MS = 10_000;
const RENDER_DELAY_MS = 30;

const $ = (id) => document.getElementById(id);

/** Everything the page knows: nodes by name and the view's meta fields. */
const store = {
  nodes: new Map(),
  meta: { main_server: "", active_server: "", generation: 0, synced_at: null, stale: false },
};

function sortedNodes() {
  return [...store.nodes.values()].sort((a, b) => (a.node < b.node ? -1 : a.node > b.node ? 1 : 0));
}

// --- rendering --------------------------------------------------------------------------------

let renderTimer = null;

/** Render soon, once for a burst of events. */
function scheduleRender() {
  if (renderTimer === null) renderTimer = setTimeout(render, RENDER_DELAY_MS);
}

function render() {
  renderTimer = null;
  const nodes = sortedNodes();
  renderSiteFilter(nodes);
  const site = $("filter-site").value;
  const status = $("filter-status").value;
  const shown = nodes.filter(
    (n) => (!site || n.site_name === site) && (!status || n.status === status),
  );
  renderRows(shown);
  renderCounters(nodes, shown.length);
  $("stale-banner").hidden = !store.meta.stale;
  $("main-server").textContent = store.meta.main_server || "—";
  $("active-server").textContent = store.meta.active_server || "—";
  $("generation").textContent = String(store.meta.generation);
  selector.setNodes(nodes, store.meta.main_server);
}

function renderSiteFilter(nodes) {
  const select = $("filter-site");
  const sites = [...new Set(nodes.map((n) => n.site_name))].sort();
  const current = select.value;
  const wanted = ["", ...sites];
  const have = [...select.options].map((o) => o.value);
  if (have.join("\u0000") === wanted.join("\u0000")) return;
  const options = wanted.map((value) => {
    const option = document.createElement("option");
    option.value = value;
    option.textContent = value || "All sites";
    return option;
  });
  select.replaceChildren(...options);
  select.value = wanted.includes(current) ? current : "";
}

function cell(text, className) {
  const td = document.createElement("td");
  td.textContent = text;
  if (className) td.className = className;
  return td;
}

function badge(text, className, title) {
  const span = document.createElement("span");
  span.className = `badge ${className}`;
  span.textContent = text;
  if (title) span.title = title;
  return span;
}

function renderRows(nodes) {
  const rows = nodes.map((n) => {
    const tr = document.createElement("tr");
    tr.dataset.node = n.node;
    tr.dataset.addr = n.addr;
    tr.dataset.status = n.status;
    tr.className = `status-${n.status}`;
    if (n.node === selector.selected) tr.classList.add("selected");
    const statusCell = cell("");
    statusCell.append(badge(n.status, `badge-${n.status}`));
    const servicesStatus = cell("");
    servicesStatus.className = "col-services-status";
    servicesStatus.append(
      n.services_status === "error"
        ? badge("error", "badge-error", n.error || "services could not be read")
        : badge("ok", "badge-ok"),
    );
    tr.append(
      cell(n.node, "col-node"),
      cell(n.addr, "col-addr"),
      statusCell,
      cell(n.type, "col-type"),
      cell(n.site_name, "col-site"),
      cell(String(n.services_count), "col-count num"),
      servicesStatus,
    );
    return tr;
  });
  $("nodes-body").replaceChildren(...rows);
  $("empty").hidden = rows.length > 0;
}

function renderCounters(nodes, shown) {
  const counts = Object.fromEntries(STATUSES.map((s) => [s, 0]));
  let errors = 0;
  for (const n of nodes) {
    counts[n.status] = (counts[n.status] || 0) + 1;
    if (n.services_status === "error") errors += 1;
  }
  for (const s of STATUSES) $(`count-${s}`).textContent = String(counts[s]);
  $("count-error").textContent = String(errors);
  $("count-total").textContent = String(nodes.length);
  $("count-shown").textContent = String(shown);
}

function renderConnection(state) {
  const element = $("connection");
  element.dataset.state = state;
  element.textContent = { connecting: "connecting…", live: "live", reconnecting: "reconnecting…" }[
    state
  ];
}

// --- services of the selected node ---------------------------------------------------------

let servicesRequest = 0;

/** Load and show the services of the node at `addr`. */
async function showServices(addr, node) {
  const request = ++servicesRequest;
  const panel = $("services");
  panel.dataset.node = node.node;
  panel.dataset.loaded = "false";
  $("services-title").textContent = `${node.node} (${addr})`;
  for (const tr of document.querySelectorAll("#nodes-body tr")) {
    tr.classList.toggle("selected", tr.dataset.node === node.node);
  }
  let body;
  try {
    const response = await fetch(`api/v1/nodes/${encodeURIComponent(addr)}/services`, {
      headers: { Accept: "application/json" },
    });
    body = await response.json();
    if (!response.ok) throw new Error(body.detail || body.error || `HTTP ${response.status}`);
  } catch (error) {
    if (request !== servicesRequest) return;
    $("services-status").replaceChildren(badge("error", "badge-error", String(error.message)));
    $("services-body").replaceChildren();
    panel.dataset.loaded = "error";
    return;
  }
  if (request !== servicesRequest) return;
  const services = Object.values(body.services).sort((a, b) => (a.ID < b.ID ? -1 : 1));
  $("services-status").replaceChildren(
    body.services_status === "error"
      ? badge(`error: last known services`, "badge-error", body.error || "")
      : badge(`${body.total} ${body.total === 1 ? "service" : "services"}`, "badge-ok"),
  );
  $("services-body").replaceChildren(
    ...services.map((s) => {
      const tr = document.createElement("tr");
      tr.dataset.service = s.ID;
      tr.append(
        cell(s.ID),
        cell(s.Service),
        cell(s.Tags.join(", ")),
        cell(String(s.Port), "num"),
        cell(s.Address || addr),
      );
      return tr;
    }),
  );
  panel.dataset.loaded = "true";
}

// --- wiring ---------------------------------------------------------------------------------

const selector = createNodeSelector({ element: $("node-select"), onChange: showServices });

/** Reload the services panel when the node it shows changed. */
function refreshSelected(entry) {
  if ($("services").dataset.node === entry.node) showServices(entry.addr, entry);
}

const live = followEvents("api/v1/nodes/events", {
  snapshot(body) {
    store.nodes = new Map(body.data.map((n) => [n.node, n]));
    const { main_server, active_server, generation, synced_at, stale } = body;
    store.meta = { main_server, active_server, generation, synced_at, stale };
    scheduleRender();
  },
  node(entry) {
    store.nodes.set(entry.node, entry);
    refreshSelected(entry);
    scheduleRender();
  },
  node_deleted({ node }) {
    store.nodes.delete(node);
    scheduleRender();
  },
  meta({ generation }) {
    store.meta.generation = generation;
    scheduleRender();
  },
  status: renderConnection,
});

/** Keep the stale banner current: heartbeats do not travel on the event stream. */
async function pollHealth() {
  try {
    const response = await fetch("healthz", { headers: { Accept: "application/json" } });
    if (response.ok) {
      const health = await response.json();
      if (typeof health.stale === "boolean" && health.stale !== store.meta.stale) {
        store.meta.stale = health.stale;
        scheduleRender();
      }
    }
  } catch {
    // The event stream reports connection trouble; this poll only tracks staleness.
  }
}
setInterval(pollHealth, HEALTH_POLL_MS);

$("filter-site").addEventListener("change", scheduleRender);
$("filter-status").addEventListener("change", scheduleRender);
$("nodes-body").addEventListener("click", (event) => {
  const row = event.target.closest("tr[data-node]");
  if (row) selector.select(row.dataset.node);
});

// A small handle for operators' consoles and the browser tests.
window.nodeview = {
  selector,
  setOnChange: (fn) => selector.setOnChange(fn),
  showServices,
  live,
  store,
};
