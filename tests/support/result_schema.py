"""Check command output against the JSON result schema the repository ships
(src/aidetect/store/result.schema.json)."""

from __future__ import annotations

import json
from typing import Any

from jsonschema import Draft202012Validator

from aidetect.result import RESULT_FIELDS, SCHEMA_FILE

SCHEMA = json.loads(SCHEMA_FILE.read_text(encoding="utf-8"))
VALIDATOR = Draft202012Validator(SCHEMA, format_checker=Draft202012Validator.FORMAT_CHECKER)


def assert_results(rows: Any) -> list[dict[str, Any]]:
    """``rows`` is a JSON array of result objects, each valid against the schema, starting
    with the documented keys in their order. Returns the rows."""
    assert isinstance(rows, list), type(rows)
    for row in rows:
        errors = sorted(VALIDATOR.iter_errors(row), key=lambda e: list(e.path))
        assert not errors, (row.get("path"), [f"{list(e.path)}: {e.message}" for e in errors])
        assert tuple(row)[: len(RESULT_FIELDS)] == RESULT_FIELDS, tuple(row)
    return rows
