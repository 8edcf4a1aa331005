"""Write the published contracts, generated from the code: docs/openapi.json and docs/asyncapi.json.

``python scripts/export_contracts.py`` rewrites both; ``--check`` writes nothing and exits 1 when
either file differs from what the code generates now.
"""

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from contracts.asyncapi import asyncapi_document  # noqa: E402
from services.api.app import create_app  # noqa: E402
from services.api.settings import ApiSettings  # noqa: E402

OPENAPI_PATH = ROOT / "docs" / "openapi.json"
ASYNCAPI_PATH = ROOT / "docs" / "asyncapi.json"
COMMAND = "python scripts/export_contracts.py"
"""What to run after a change to a route, a response model, an event or a subject."""


def openapi_document() -> dict[str, Any]:
    """The API's OpenAPI document, as the running API serves it at /openapi.json."""
    # Defaults only: the document must not depend on the environment it is generated in.
    document: dict[str, Any] = create_app(ApiSettings.model_validate({})).openapi()
    return document


def render(document: dict[str, Any]) -> str:
    """The stable text of a document: indented, keys in code order, newline at the end."""
    return json.dumps(document, indent=2, ensure_ascii=False) + "\n"


DOCUMENTS: dict[Path, Callable[[], dict[str, Any]]] = {
    OPENAPI_PATH: openapi_document,
    ASYNCAPI_PATH: asyncapi_document,
}


def stale_documents() -> list[Path]:
    """The contract files whose content differs from what the code generates now."""
    return [
        path
        for path, build in DOCUMENTS.items()
        if not path.exists() or path.read_text(encoding="utf-8") != render(build())
    ]


def main(argv: list[str] | None = None) -> int:
    """Write the contract documents, or with ``--check`` say which are out of date."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--check", action="store_true", help="only compare; exit 1 on drift")
    args = parser.parse_args(argv)
    if args.check:
        stale = stale_documents()
        for path in stale:
            print(f"{path.relative_to(ROOT)} is out of date: run {COMMAND}", file=sys.stderr)
        return 1 if stale else 0
    for path, build in DOCUMENTS.items():
        path.write_text(render(build()), encoding="utf-8")
        print(f"wrote {path.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
