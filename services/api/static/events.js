// The live feed: an EventSource on /api/v1/nodes/events that always comes back.

const FIRST_RETRY_MS = 500;
const MAX_RETRY_MS = 10_000;

/**
 * Follow `url` and call `handlers.snapshot|node|node_deleted|meta(data)` with parsed JSON, and
 * `handlers.status(state)` with "connecting", "live" or "reconnecting".
 *
 * Every (re)connection starts with a fresh `snapshot`, so nothing missed while disconnected is
 * lost. The browser's own retry gives up for good on a non-200 answer (503 while the API
 * replays, 429 when too many streams are open), so every error closes the stream and a new one
 * is opened after a growing, jittered delay.
 */
export function followEvents(url, handlers) {
  let source = null;
  let delay = FIRST_RETRY_MS;
  let timer = null;
  const stats = { connects: 0, snapshots: 0, errors: 0 };

  function on(name, handler) {
    source.addEventListener(name, (message) => {
      let data;
      try {
        data = JSON.parse(message.data);
      } catch (error) {
        console.warn("nodeview: bad event data", name, error);
        return;
      }
      handler(data);
    });
  }

  function open() {
    timer = null;
    handlers.status(stats.connects === 0 ? "connecting" : "reconnecting");
    source = new EventSource(url);
    source.addEventListener("open", () => {
      stats.connects += 1;
    });
    on("snapshot", (data) => {
      stats.snapshots += 1;
      delay = FIRST_RETRY_MS;
      handlers.snapshot(data);
      handlers.status("live");
    });
    on("node", handlers.node);
    on("node_deleted", handlers.node_deleted);
    on("meta", handlers.meta);
    source.addEventListener("error", () => {
      stats.errors += 1;
      source.close();
      handlers.status("reconnecting");
      if (timer === null) {
        const wait = delay * (0.75 + Math.random() * 0.5);
        delay = Math.min(delay * 2, MAX_RETRY_MS);
        timer = setTimeout(open, wait);
      }
    });
  }

  open();
  return {
    stats,
    /** Close the current stream and open a new one now. */
    reconnect() {
      if (source) source.close();
      if (timer !== null) clearTimeout(timer);
      open();
    },
  };
}
