# Consul agent watches that POST each change to nodeview's relay (handler_type "http").
# Put this file in the agent's configuration directory and run `consul reload`.
# Replace RELAY_URL with the relay's address as the agent sees it (inside the cluster:
# http://nodeview-relay.nodeview.svc:8081) and RELAY_TOKEN with the relay's bearer token.
# The file holds a secret: keep it readable by the Consul agent only (mode 0600).
watches = [
  {
    type         = "nodes"
    handler_type = "http"
    http_handler_config {
      path    = "RELAY_URL/v1/watch/nodes"
      method  = "POST"
      header  = { Authorization = ["Bearer RELAY_TOKEN"] }
      timeout = "10s"
    }
  },
  {
    type         = "services"
    handler_type = "http"
    http_handler_config {
      path    = "RELAY_URL/v1/watch/services"
      method  = "POST"
      header  = { Authorization = ["Bearer RELAY_TOKEN"] }
      timeout = "10s"
    }
  },
  {
    type         = "checks"
    state        = "any"
    handler_type = "http"
    http_handler_config {
      path    = "RELAY_URL/v1/watch/checks"
      method  = "POST"
      header  = { Authorization = ["Bearer RELAY_TOKEN"] }
      timeout = "10s"
    }
  },
  {
    type         = "key"
    key          = "skills/eye/metadata/sites"
    handler_type = "http"
    http_handler_config {
      path    = "RELAY_URL/v1/watch/key?key=skills/eye/metadata/sites"
      method  = "POST"
      header  = { Authorization = ["Bearer RELAY_TOKEN"] }
      timeout = "10s"
    }
  },
  {
    type         = "event"
    name         = "nodeview-resync"
    handler_type = "http"
    http_handler_config {
      path    = "RELAY_URL/v1/watch/event?name=nodeview-resync"
      method  = "POST"
      header  = { Authorization = ["Bearer RELAY_TOKEN"] }
      timeout = "10s"
    }
  },
]
