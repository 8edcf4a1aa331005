"""The API: serves the node view from memory, kept current by the KV bucket's updates."""
