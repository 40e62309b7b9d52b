"""The shipped JSON Schemas match the code and accept the real and example data."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest
import yaml

from cccn_feeds.schema import schema_text

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize("which", ["news", "events"])
def test_shipped_file_is_current(which: str) -> None:
    shipped = (ROOT / "schema" / f"{which}.schema.json").read_text()
    assert shipped == schema_text(which), "run: cccn-feeds schema {which} > schema/..."


def _loader() -> type[yaml.SafeLoader]:
    """YAML as an editor's language server sees it: dates stay strings."""

    class Loader(yaml.SafeLoader):
        pass

    Loader.yaml_implicit_resolvers = {
        k: [(tag, rx) for tag, rx in v if tag != "tag:yaml.org,2002:timestamp"]
        for k, v in yaml.SafeLoader.yaml_implicit_resolvers.items()
    }
    return Loader


@pytest.mark.parametrize("folder", ["data", "examples"])
@pytest.mark.parametrize("which", ["news", "events"])
def test_data_validates(folder: str, which: str) -> None:
    schema = json.loads(schema_text(which))
    document = yaml.load((ROOT / folder / f"{which}.yaml").read_text(), Loader=_loader())
    jsonschema.validate(document, schema)


def test_schema_rejects_typos() -> None:
    schema = json.loads(schema_text("events"))
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({"events": [{"id": "a", "title": "A", "strat": "2026-01-01"}]}, schema)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(
            {"events": [{"id": "A B", "title": "A", "start": "2026-01-01"}]}, schema
        )
