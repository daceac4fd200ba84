from __future__ import annotations

import io
import json
import logging

from orchestrator_app.logging import REDACTED, JsonFormatter, Redactor


def _emit(redactor: Redactor, message: str, *args: object, **extra: object) -> str:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter(redactor))
    logger = logging.getLogger("test.orchestrator.logging")
    logger.addHandler(handler)
    logger.propagate = False
    try:
        logger.warning(message, *args, extra=extra)
    finally:
        logger.removeHandler(handler)
    return stream.getvalue()


def test_each_record_is_one_json_object_on_one_line_with_extra_fields() -> None:
    line = _emit(Redactor(), "worker started\nsecond line", session_id="sesn_1")
    assert line.count("\n") == 1
    entry = json.loads(line)
    assert entry["msg"] == "worker started\nsecond line"
    assert entry["level"] == "warning"
    assert entry["session_id"] == "sesn_1"
    assert "ts" in entry


def test_registered_secret_values_are_redacted_wherever_they_appear() -> None:
    redactor = Redactor(["bl-very-secret-api-key"])
    line = _emit(
        redactor, "calling with %s", "bl-very-secret-api-key", reason="key=bl-very-secret-api-key"
    )
    assert "bl-very-secret-api-key" not in line
    assert REDACTED in json.loads(line)["msg"]


def test_secret_shaped_strings_are_redacted_even_when_unregistered() -> None:
    line = _emit(
        Redactor(),
        "oops %s %s %s",
        "sk-ant-oat01-AbCdEf_123",
        "whsec_c2VjcmV0c2VjcmV0",
        "Authorization: Bearer eyJhbGciOi.payload.sig",
    )
    assert "sk-ant-oat01-AbCdEf_123" not in line
    assert "whsec_c2VjcmV0c2VjcmV0" not in line
    assert "eyJhbGciOi.payload.sig" not in line
