# Consul agent watches that run `nodeview relay handle` (handler_type "script").
# Needs nodeview installed on the agent's host and the agent's environment holding
# NATS_URL and the NATS credentials (NATS_USER + NATS_PASSWORD, or NATS_CREDS_FILE).
# Consul passes the watch JSON on stdin and the index in CONSUL_INDEX.
watches = [
  {
    type         = "nodes"
    handler_type = "script"
    args         = ["nodeview", "relay", "handle", "--type", "nodes"]
  },
  {
    type         = "services"
    handler_type = "script"
    args         = ["nodeview", "relay", "handle", "--type", "services"]
  },
  {
    type         = "checks"
    state        = "any"
    handler_type = "script"
    args         = ["nodeview", "relay", "handle", "--type", "checks"]
  },
  {
    type         = "key"
    key          = "skills/eye/metadata/sites"
    handler_type = "script"
    args = [
      "nodeview", "relay", "handle", "--type", "key", "--key", "skills/eye/metadata/sites",
    ]
  },
  {
    type         = "event"
    name         = "nodeview-resync"
    handler_type = "script"
    args = [
      "nodeview", "relay", "handle", "--type", "event", "--name", "nodeview-resync",
    ]
  },
]
