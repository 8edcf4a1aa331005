"""nodeview services (relay, enricher, api) and the adapters they share."""
