"""The scheduling mode's model floor and its stand-in worker's pure parts."""

import base64
import json

import pytest

from bench.scheduling import default_concurrency, model_floor, ratio
from bench.standin_worker.__main__ import sessions_token
from orchestrator_app.settings import Settings


def test_the_floor_is_sessions_over_concurrency_times_creation() -> None:
    assert model_floor(200, 8, 2.0) == 50.0
    assert model_floor(1, 8, 2.0) == 0.25


def test_the_floor_refuses_an_impossible_setup() -> None:
    with pytest.raises(ValueError, match="concurrency"):
        model_floor(200, 0, 2.0)


def test_the_default_concurrency_is_the_orchestrators_own() -> None:
    assert default_concurrency() == Settings().max_concurrent_starts


def test_a_ratio_without_a_figure_is_none() -> None:
    assert ratio(None, 50.0) is None
    assert ratio(60.0, 0.0) is None
    assert ratio(60.0, 50.0) == 1.2


def test_the_standin_reads_the_sessions_token_from_a_work_secret_with_or_without_padding() -> None:
    secret = base64.urlsafe_b64encode(json.dumps({"sessions_token": "tok_abc"}).encode()).decode()
    assert sessions_token(secret) == "tok_abc"
    assert sessions_token(secret.rstrip("=")) == "tok_abc"


def test_the_load_writes_one_closing_post_with_the_bodys_length() -> None:
    from bench.load import request_bytes

    raw = request_bytes("127.0.0.1", 8000, "/webhook", b'{"a": 1}', {"webhook-id": "msg_1"})
    head, body = raw.split(b"\r\n\r\n", 1)
    assert head.startswith(b"POST /webhook HTTP/1.1\r\n")
    assert b"Content-Length: 8" in head and b"Connection: close" in head
    assert b"webhook-id: msg_1" in head and body == b'{"a": 1}'


def test_the_load_reads_the_status_of_an_answer_and_zero_of_garbage() -> None:
    from bench.load import status_of

    assert status_of(b"HTTP/1.1 200 OK\r\n") == 200
    assert status_of(b"HTTP/1.1 401 Unauthorized\r\n") == 401
    assert status_of(b"") == 0
    assert status_of(b"garbage here\r\n") == 0
