"""Settings of ``nodeview dev``: the size of the generated cluster and the tokens it hands out."""

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

MAX_DEV_SITES = 200
"""Sites the generated sites document may hold (the Consul double's own limit)."""


class DevSettings(BaseSettings):
    """What ``nodeview dev`` reads from its flags and environment."""

    model_config = SettingsConfigDict(extra="ignore", frozen=True, use_attribute_docstrings=True)

    nodes: int = Field(default=50, ge=0, le=100_000, validation_alias="NODEVIEW_DEV_NODES")
    """Nodes in the generated inventory."""
    services: int = Field(default=8, ge=1, le=10_000, validation_alias="NODEVIEW_DEV_SERVICES")
    """Distinct service names in the generated inventory."""
    sites: int = Field(default=3, ge=1, le=MAX_DEV_SITES, validation_alias="NODEVIEW_DEV_SITES")
    """Sites in the generated sites document."""
    churn: float = Field(default=0.0, ge=0, le=1000, validation_alias="NODEVIEW_DEV_CHURN")
    """Also change the inventory this many times per second (0: never)."""
    api_replicas: int = Field(default=1, ge=1, le=16, validation_alias="NODEVIEW_DEV_API_REPLICAS")
    """API processes: the first on port 8080, the next ones on 8091, 8092 …"""
    tracing: bool = Field(default=False, validation_alias="NODEVIEW_DEV_TRACING")
    """Export traces over OTLP/HTTP (OTEL_EXPORTER_OTLP_ENDPOINT, default localhost:4318)."""
    relay_token: SecretStr | None = Field(default=None, validation_alias="RELAY_TOKEN")
    """Bearer token of the relay's watch handler (generated when unset)."""
    api_admin_token: SecretStr | None = Field(default=None, validation_alias="API_ADMIN_TOKEN")
    """Bearer token of the API's flush endpoint (generated when unset)."""
