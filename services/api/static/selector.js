// The node selector: a <select> whose first choice is the main server and whose change
// callback always reaches the latest subscriber.

/**
 * Pick the node to select first.
 *
 * `main_server` is the `host:port` of the first configured Consul server, not a node address,
 * so the choice is, in order: the node whose address equals that host; else the first node of
 * type `server` (alive ones before the others); else the first node. `nodes` is sorted by name.
 */
export function pickMainNode(nodes, mainServer) {
  if (nodes.length === 0) return null;
  const host = hostOf(mainServer || "");
  if (host) {
    const byAddr = nodes.find((n) => n.addr === host);
    if (byAddr) return byAddr;
  }
  const servers = nodes.filter((n) => n.type === "server");
  return servers.find((n) => n.status === "alive") || servers[0] || nodes[0];
}

/** Return the host part of `host:port`, `[v6]:port` or a bare host. */
export function hostOf(hostPort) {
  const value = hostPort.replace(/^[a-z]+:\/\//i, "");
  if (value.startsWith("[")) return value.slice(1, value.indexOf("]"));
  const colons = value.split(":").length - 1;
  return colons === 1 ? value.slice(0, value.indexOf(":")) : value;
}

/**
 * Create a node selector bound to `element` (a <select>).
 *
 * `onChange(addr, node)` is called once with the initial choice (the main server) as soon as
 * nodes are known, and then on every user choice.
 */
export function createNodeSelector({ element, onChange }) {
  // "Latest callback in a ref": the callback lives in a mutable holder that is read at call
  // time, never captured when the nodes first arrive. A parent may swap it at any moment (new
  // filters, telemetry, a test) without re-running the initial selection, and whoever is the
  // subscriber when the initial choice is made receives it. Capturing the callback instead, or
  // skipping the initial choice when the callback changes, loses that first notification.
  const onChangeRef = { current: onChange || null };
  let nodes = [];
  let selected = null;

  function notify() {
    const node = nodes.find((n) => n.node === selected) || null;
    const callback = onChangeRef.current;
    if (callback && node) callback(node.addr, node);
  }

  function renderOptions() {
    const options = nodes.map((n) => {
      const option = document.createElement("option");
      option.value = n.node;
      option.textContent = `${n.node} (${n.addr})${n.type === "server" ? " · server" : ""}`;
      return option;
    });
    if (selected !== null && !nodes.some((n) => n.node === selected)) {
      const gone = document.createElement("option");
      gone.value = selected;
      gone.textContent = `${selected} (gone)`;
      options.unshift(gone);
    }
    element.replaceChildren(...options);
    element.disabled = nodes.length === 0;
    if (selected !== null) element.value = selected;
  }

  element.addEventListener("change", () => {
    selected = element.value;
    notify();
  });

  return {
    /** Replace the callback; the next notification (initial or not) goes to `fn`. */
    setOnChange(fn) {
      onChangeRef.current = fn;
    },

    /** Give the current nodes; makes the initial choice the first time nodes are known. */
    setNodes(next, mainServer) {
      nodes = next;
      if (selected === null && nodes.length > 0) {
        selected = pickMainNode(nodes, mainServer).node;
        renderOptions();
        notify();
        return;
      }
      renderOptions();
    },

    /** Select the node called `name` as if the user had chosen it. */
    select(name) {
      if (!nodes.some((n) => n.node === name)) return;
      selected = name;
      element.value = name;
      notify();
    },

    /** Name of the selected node, or null before the initial choice. */
    get selected() {
      return selected;
    },
  };
}
