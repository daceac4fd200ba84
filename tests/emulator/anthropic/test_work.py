"""The work queue through the SDK: long poll, ack, leases, stop, list, stats, reclaim."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import anthropic
import pytest
from anthropic.types.beta.environments import (
    BetaHeartbeatPreconditionFailedError,
    BetaSelfHostedWork,
    BetaSelfHostedWorkHeartbeatResponse,
    BetaSelfHostedWorkQueueStats,
)

from tests.emulator.anthropic.conftest import AnthropicServer
from tests.emulator.anthropic.helpers import (
    agent,
    self_hosted_environment,
    session,
    sessions_token,
    strict,
    wait_until,
)

BearerClient = Callable[[str], anthropic.Anthropic]
Queue = tuple[str, anthropic.Anthropic, str]


def claim(work: Any, environment_id: str, **kwargs: Any) -> BetaSelfHostedWork:
    """Poll for an item that must be there."""
    item: BetaSelfHostedWork | None = work.poll(environment_id, block_ms=10, **kwargs)
    assert item is not None
    return item


@pytest.fixture
def queue(
    client: anthropic.Anthropic, emulator: AnthropicServer, bearer_client: BearerClient
) -> Queue:
    """(environment id, environment-key client, session id) with one queued work item."""
    environment = self_hosted_environment(client)
    worker = bearer_client(emulator.environment_key(environment.id))
    created = session(client, environment.id, agent(client).id)
    return environment.id, worker, created.id


def test_an_empty_queue_answers_null(
    client: anthropic.Anthropic, emulator: AnthropicServer, bearer_client: BearerClient
) -> None:
    environment = self_hosted_environment(client)
    worker = bearer_client(emulator.environment_key(environment.id))
    raw = worker.beta.environments.work.with_raw_response.poll(environment.id, block_ms=1)
    assert (raw.status_code, raw.http_response.text) == (200, "null")
    assert raw.parse() is None


def test_block_ms_outside_1_to_999_is_refused(queue: Queue) -> None:
    environment_id, worker, _ = queue
    with pytest.raises(anthropic.BadRequestError) as caught:
        worker.beta.environments.work.poll(environment_id, block_ms=1000)
    assert caught.value.api_message == "block_ms: must be between 1 and 999, got 1000"


def test_poll_hands_out_the_session_with_a_secret(queue: Queue) -> None:
    environment_id, worker, session_id = queue
    item = worker.beta.environments.work.poll(
        environment_id, block_ms=10, anthropic_worker_id="w-1"
    )
    assert item is not None
    strict(BetaSelfHostedWork, item)
    assert (item.data.type, item.data.id, item.state) == ("session", session_id, "queued")
    assert sessions_token(item.secret or "").startswith("sk-ant-sst01-")
    stats = worker.beta.environments.work.stats(environment_id)
    strict(BetaSelfHostedWorkQueueStats, stats)
    assert (stats.depth, stats.pending, stats.workers_polling) == (0, 1, 1)


def test_the_lease_follows_ack_and_heartbeats(queue: Queue) -> None:
    environment_id, worker, _ = queue
    work = worker.beta.environments.work
    item = claim(work, environment_id)
    assert work.ack(item.id, environment_id=environment_id).state == "starting"
    first = work.heartbeat(
        item.id, environment_id=environment_id, expected_last_heartbeat="NO_HEARTBEAT"
    )
    strict(BetaSelfHostedWorkHeartbeatResponse, first)
    assert (first.state, first.lease_extended, first.ttl_seconds) == ("active", True, 300)
    second = work.heartbeat(
        item.id, environment_id=environment_id, expected_last_heartbeat=first.last_heartbeat
    )
    assert second.last_heartbeat > first.last_heartbeat


def test_a_heartbeat_with_a_stale_value_has_lost_the_lease(queue: Queue) -> None:
    environment_id, worker, _ = queue
    work = worker.beta.environments.work
    item = claim(work, environment_id)
    work.ack(item.id, environment_id=environment_id)
    beat = work.heartbeat(
        item.id, environment_id=environment_id, expected_last_heartbeat="NO_HEARTBEAT"
    )
    with pytest.raises(BetaHeartbeatPreconditionFailedError) as caught:
        work.heartbeat(
            item.id, environment_id=environment_id, expected_last_heartbeat="NO_HEARTBEAT"
        )
    assert caught.value.status_code == 412
    assert caught.value.api_message == (
        f"expected_last_heartbeat does not match the lease of work item {item.id}; another worker may hold it"
    )
    assert caught.value.error_code == "heartbeat_precondition_failed"
    assert caught.value.details.current_state.last_heartbeat == beat.last_heartbeat


def test_stopping_twice_is_a_conflict(queue: Queue) -> None:
    environment_id, worker, _ = queue
    work = worker.beta.environments.work
    item = claim(work, environment_id)
    work.ack(item.id, environment_id=environment_id)
    assert work.stop(item.id, environment_id=environment_id, force=True).state == "stopped"
    with pytest.raises(anthropic.ConflictError) as caught:
        work.stop(item.id, environment_id=environment_id, force=True)
    assert caught.value.status_code == 409
    assert caught.value.api_message == f"Work item {item.id} is already stopped"
    # The SDK retries a bare 409; the platform's answer tells it not to.
    assert caught.value.response.headers["x-should-retry"] == "false"


def test_a_graceful_stop_reaches_the_worker_through_its_heartbeat(queue: Queue) -> None:
    environment_id, worker, _ = queue
    work = worker.beta.environments.work
    item = claim(work, environment_id)
    work.ack(item.id, environment_id=environment_id)
    beat = work.heartbeat(
        item.id, environment_id=environment_id, expected_last_heartbeat="NO_HEARTBEAT"
    )
    assert work.stop(item.id, environment_id=environment_id).state == "stopping"
    after = work.heartbeat(
        item.id, environment_id=environment_id, expected_last_heartbeat=beat.last_heartbeat
    )
    assert (after.state, after.lease_extended) == ("stopping", False)


def test_an_unacknowledged_item_is_reclaimed_by_another_worker(
    queue: Queue, emulator: AnthropicServer
) -> None:
    environment_id, worker, session_id = queue
    work = worker.beta.environments.work
    first = claim(work, environment_id, anthropic_worker_id="w-dead")
    assert work.poll(environment_id, block_ms=1, anthropic_worker_id="w-2") is None
    again = work.poll(
        environment_id, block_ms=1, reclaim_older_than_ms=0, anthropic_worker_id="w-2"
    )
    assert again is not None and again.id == first.id
    assert emulator.backend.workers_for(session_id) == ["w-dead", "w-2"]


def test_an_expired_lease_goes_back_to_the_queue(queue: Queue, emulator: AnthropicServer) -> None:
    environment_id, worker, _ = queue
    work = worker.beta.environments.work
    item = claim(work, environment_id)
    work.ack(item.id, environment_id=environment_id)
    beat = work.heartbeat(
        item.id,
        environment_id=environment_id,
        expected_last_heartbeat="NO_HEARTBEAT",
        desired_ttl_seconds=30,
    )
    emulator.backend.clock.advance(31)
    reclaimed = work.poll(environment_id, block_ms=10)
    assert reclaimed is not None and reclaimed.id == item.id
    with pytest.raises(BetaHeartbeatPreconditionFailedError):
        work.heartbeat(
            item.id, environment_id=environment_id, expected_last_heartbeat=beat.last_heartbeat
        )


def test_list_takes_the_environment_key_and_refuses_the_api_key(
    queue: Queue, client: anthropic.Anthropic
) -> None:
    environment_id, worker, session_id = queue
    assert [w.data.id for w in worker.beta.environments.work.list(environment_id)] == [session_id]
    with pytest.raises(anthropic.PermissionDeniedError) as caught:
        client.beta.environments.work.list(environment_id)
    assert (
        caught.value.api_message == "This endpoint requires the environment key as a bearer token"
    )


def test_an_environment_key_opens_no_other_environment(
    queue: Queue, client: anthropic.Anthropic
) -> None:
    _, worker, _ = queue
    other = self_hosted_environment(client, "other")
    with pytest.raises(anthropic.PermissionDeniedError) as caught:
        worker.beta.environments.work.poll(other.id)
    assert (
        caught.value.api_message == f"The environment key is not valid for environment {other.id}"
    )


def test_the_sessions_token_serves_its_item_and_session_only(
    queue: Queue, client: anthropic.Anthropic, bearer_client: BearerClient
) -> None:
    environment_id, worker, session_id = queue
    item = claim(worker.beta.environments.work, environment_id)
    worker.beta.environments.work.ack(item.id, environment_id=environment_id)
    scoped = bearer_client(sessions_token(item.secret or ""))
    beat = scoped.beta.environments.work.heartbeat(
        item.id, environment_id=environment_id, expected_last_heartbeat="NO_HEARTBEAT"
    )
    assert beat.lease_extended
    assert scoped.beta.sessions.retrieve(session_id).id == session_id
    other = session(client, environment_id, agent(client, "other").id)
    with pytest.raises(anthropic.PermissionDeniedError) as caught:
        scoped.beta.sessions.events.list(other.id)
    assert caught.value.api_message == f"The sessions token is not valid for session {other.id}"
    with pytest.raises(anthropic.PermissionDeniedError):
        scoped.beta.environments.work.poll(environment_id)
    with pytest.raises(anthropic.PermissionDeniedError):
        scoped.beta.environments.list()
    assert (
        scoped.beta.environments.work.stop(item.id, environment_id=environment_id, force=True).state
        == "stopped"
    )


def test_a_long_poll_wakes_up_when_work_arrives(
    client: anthropic.Anthropic, emulator: AnthropicServer, bearer_client: BearerClient
) -> None:
    environment = self_hosted_environment(client)
    worker = bearer_client(emulator.environment_key(environment.id))
    found: list[object] = []
    thread = threading.Thread(
        target=lambda: found.append(
            worker.beta.environments.work.poll(environment.id, block_ms=999)
        )
    )
    thread.start()
    wait_until(lambda: emulator.backend._waiters)  # the poll is parked on the server
    created = session(client, environment.id, agent(client).id)
    thread.join()
    (item,) = found
    assert item is not None and item.data.id == created.id  # type: ignore[attr-defined]


def test_the_api_key_reads_and_tags_work_but_never_sees_its_secret(
    queue: Queue, client: anthropic.Anthropic
) -> None:
    environment_id, worker, _ = queue
    item = claim(worker.beta.environments.work, environment_id)
    fetched = client.beta.environments.work.retrieve(item.id, environment_id=environment_id)
    assert (fetched.id, fetched.secret) == (item.id, None)
    tagged = client.beta.environments.work.update(
        item.id, environment_id=environment_id, metadata={"sandbox": "worker-1"}
    )
    assert tagged.metadata == {"sandbox": "worker-1"}
    with pytest.raises(anthropic.PermissionDeniedError) as caught:
        worker.beta.environments.work.retrieve(item.id, environment_id=environment_id)
    assert (
        caught.value.api_message
        == "This endpoint requires an API key; the credential given is not one"
    )


def test_an_unknown_work_item_is_not_found(queue: Queue) -> None:
    environment_id, worker, _ = queue
    with pytest.raises(anthropic.NotFoundError) as caught:
        worker.beta.environments.work.ack("work_missing", environment_id=environment_id)
    assert (
        caught.value.api_message
        == f"Work item work_missing not found in environment {environment_id}"
    )


def test_a_late_ack_of_reclaimed_work_is_harmless_and_the_first_heartbeat_wins(
    queue: Queue, bearer_client: BearerClient
) -> None:
    environment_id, worker, _ = queue
    work = worker.beta.environments.work
    slow = claim(work, environment_id, anthropic_worker_id="slow")
    fast = work.poll(
        environment_id, block_ms=1, reclaim_older_than_ms=0, anthropic_worker_id="fast"
    )
    assert slow is not None and fast is not None and slow.id == fast.id
    work.ack(fast.id, environment_id=environment_id)
    assert work.ack(slow.id, environment_id=environment_id).state == "starting"
    winner = bearer_client(sessions_token(fast.secret or "")).beta.environments.work
    loser = bearer_client(sessions_token(slow.secret or "")).beta.environments.work
    winner.heartbeat(fast.id, environment_id=environment_id, expected_last_heartbeat="NO_HEARTBEAT")
    with pytest.raises(BetaHeartbeatPreconditionFailedError):
        loser.heartbeat(
            slow.id, environment_id=environment_id, expected_last_heartbeat="NO_HEARTBEAT"
        )
