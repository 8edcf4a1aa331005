"""The NATS users of deploy/ deny exactly what the dev stack and the tests deny."""

import json
import re
from pathlib import Path

from devstack.nats_roles import DENIED_PUBLISH, ROLES

NATS_CONF = Path(__file__).resolve().parents[2] / "deploy" / "k8s" / "base" / "nats" / "nats.conf"
USER = re.compile(r"\{user: nodeview-(\w+), password: \$(\w+), .*deny: (\[.*?\])\}\}\}")


def test_deployed_users_match_the_role_rules() -> None:
    """Each role's user in nats.conf has the password variable and deny list of its role."""
    found = {m.group(1): m for m in USER.finditer(NATS_CONF.read_text())}
    assert set(found) == set(ROLES)
    for role, match in found.items():
        assert match.group(2) == f"NATS_{role.upper()}_PASSWORD"
        assert tuple(json.loads(match.group(3))) == DENIED_PUBLISH[role], role
