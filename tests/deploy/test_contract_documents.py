"""docs/openapi.json and docs/asyncapi.json: generated from the code, valid, and never stale."""

import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from tests.deploy.support import ROOT, load_script

ASYNCAPI_SCHEMA = Path(__file__).parent / "data" / "asyncapi-3.0.0.schema.json"
"""The official JSON schema of AsyncAPI 3.0.0 documents (@asyncapi/specs, Apache-2.0)."""

export = load_script("export_contracts")


@pytest.mark.parametrize("name", ["openapi.json", "asyncapi.json"])
def test_the_committed_document_is_what_the_code_generates(name: str) -> None:
    """A route, model, event or subject changed without regenerating its document: fail, say how."""
    path = ROOT / "docs" / name
    build = export.DOCUMENTS[path]
    generated = export.render(build())
    committed = path.read_text(encoding="utf-8") if path.exists() else ""
    assert committed == generated, f"docs/{name} is out of date: run {export.COMMAND}"


def test_check_mode_names_the_stale_file_and_the_command(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """``--check`` exits 1 on a stale copy and prints which file and which command to run."""
    stale = ROOT / "docs" / "asyncapi.json"
    copy = tmp_path / "asyncapi.json"
    build = export.DOCUMENTS[stale]
    copy.write_text(stale.read_text(encoding="utf-8").replace('"3.0.0"', '"2.6.0"', 1))
    monkeypatch.setattr(export, "ROOT", tmp_path)
    monkeypatch.setattr(export, "DOCUMENTS", {copy: build})
    assert export.main(["--check"]) == 1
    assert f"asyncapi.json is out of date: run {export.COMMAND}" in capsys.readouterr().err
    copy.write_text(export.render(build()))
    assert export.main(["--check"]) == 0


def _asyncapi() -> dict[str, Any]:
    document: dict[str, Any] = json.loads((ROOT / "docs" / "asyncapi.json").read_text())
    return document


def test_the_asyncapi_document_is_valid_asyncapi_3() -> None:
    """The document passes the official AsyncAPI 3.0.0 schema; a broken copy does not."""
    validator = jsonschema.Draft7Validator(json.loads(ASYNCAPI_SCHEMA.read_text()))
    document = _asyncapi()
    assert [error.message for error in validator.iter_errors(document)] == []
    document["operations"]["publishChange"]["action"] = "publish"
    assert list(validator.iter_errors(document)), "the schema check cannot fail"


def test_every_channel_parameter_is_declared_and_every_example_fits_its_schema() -> None:
    """Each ``{name}`` in an address has a parameter; each example validates as its payload."""
    document = _asyncapi()
    for name, channel in document["channels"].items():
        placeholders = {
            part[1:-1] for part in channel["address"].split(".") if part.startswith("{")
        }
        assert placeholders == set(channel.get("parameters", {})), name
    checked = 0
    for name, message in document["components"]["messages"].items():
        for example in message.get("examples", []):
            schema = {**message["payload"], "components": document["components"]}
            jsonschema.Draft202012Validator(schema).validate(example["payload"])
            checked += 1
        if "$ref" in message["payload"]:
            assert message.get("examples"), f"{name} has no example"
    assert checked >= 6
