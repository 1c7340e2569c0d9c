"""The relay's durable queue on real files."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

from tenanttls.clock import ManualClock
from tenanttls.relay.queue import DELIVERED, FAILED, MessageQueue, QueuedMessage, next_attempt

TENANT = "0b5e8a3c-7d1f-4a2b-9c6e-1f2a3b4c5d6e"


def enqueue(queue: MessageQueue, content: bytes = b"Subject: x\r\n\r\nbody\r\n") -> QueuedMessage:
    return queue.enqueue(tenant_id=TENANT, mail_from="alice@contoso.com", recipients=["bob@outside.example"],
                         content=content, message_id="<q@contoso.com>")


def test_enqueue_writes_both_files(tmp_path):
    queue = MessageQueue(tmp_path)

    message = enqueue(queue)

    assert (tmp_path / "messages" / f"{message.id}.eml").read_bytes() == b"Subject: x\r\n\r\nbody\r\n"
    state = json.loads((tmp_path / "messages" / f"{message.id}.json").read_text())
    assert state["tenant_id"] == TENANT
    assert state["recipients"] == [{"address": "bob@outside.example", "status": "pending", "reply": None}]
    assert list((tmp_path / "tmp").iterdir()) == []


def test_recover_loads_queued_messages(tmp_path):
    first = enqueue(MessageQueue(tmp_path))

    queue = MessageQueue(tmp_path)
    recovery = queue.recover()

    assert recovery.queued == 1
    assert recovery.possible_duplicates == []
    assert queue.get(first.id).mail_from == "alice@contoso.com"
    assert queue.content(queue.get(first.id)) == b"Subject: x\r\n\r\nbody\r\n"


def test_recover_removes_partial_write(tmp_path):
    queue = MessageQueue(tmp_path)
    message = enqueue(queue)
    (tmp_path / "messages" / f"{message.id}.json").unlink()  # the crash came before the state file
    (tmp_path / "tmp" / "half-written").write_bytes(b"x")

    recovery = MessageQueue(tmp_path).recover()

    assert recovery.queued == 0
    assert recovery.removed_partial == 1
    assert list((tmp_path / "messages").iterdir()) == []
    assert list((tmp_path / "tmp").iterdir()) == []


def test_recover_reports_in_flight(tmp_path):
    queue = MessageQueue(tmp_path)
    message = enqueue(queue)
    message.in_flight = True
    queue.save(message)

    restarted = MessageQueue(tmp_path)
    recovery = restarted.recover()

    assert recovery.possible_duplicates == [message.id]
    assert restarted.get(message.id).in_flight is False
    [outcome] = restarted.outcomes()
    assert outcome["outcome"] == "possible-duplicate"
    assert outcome["message_id"] == "<q@contoso.com>"


def test_recover_moves_damaged_state_aside(tmp_path):
    queue = MessageQueue(tmp_path)
    message = enqueue(queue)
    (tmp_path / "messages" / f"{message.id}.json").write_text("{not json")

    recovery = MessageQueue(tmp_path).recover()

    assert recovery.queued == 0
    assert (tmp_path / "messages" / f"{message.id}.damaged").exists()


def test_remove_deletes_files(tmp_path):
    queue = MessageQueue(tmp_path)
    message = enqueue(queue)

    queue.remove(message)

    assert len(queue) == 0
    assert list((tmp_path / "messages").iterdir()) == []


def test_finished_needs_no_pending_or_failed(tmp_path):
    message = enqueue(MessageQueue(tmp_path))

    assert not message.is_finished
    message.recipients[0].status = FAILED
    assert not message.is_finished
    message.recipients[0].status = DELIVERED
    assert message.is_finished


def test_outcomes_skip_cut_line(tmp_path):
    queue = MessageQueue(tmp_path)
    message = enqueue(queue)
    queue.record_outcome(message, "bob@outside.example", "delivered", "250 OK")
    with open(tmp_path / "outcomes.jsonl", "ab") as handle:
        handle.write(b'{"at": "2026')  # a line cut short by a kill

    outcomes = queue.outcomes()

    assert [line["outcome"] for line in outcomes] == ["delivered"]


def test_state_round_trip(tmp_path):
    clock = ManualClock(datetime(2026, 2, 1, tzinfo=timezone.utc))
    queue = MessageQueue(tmp_path, clock=clock)
    message = queue.enqueue(tenant_id=TENANT, mail_from="", recipients=["a@x.example", "b@x.example"],
                            content=b"x\r\n", mail_options=["SMTPUTF8"], kind="dsn")

    restored = QueuedMessage.from_json(json.loads(json.dumps(message.to_json())))

    assert restored == message
    assert restored.received_at == datetime(2026, 2, 1, tzinfo=timezone.utc)


def test_next_attempt_repeats_last_delay():
    now = datetime(2026, 2, 1, tzinfo=timezone.utc)
    schedule = (60.0, 300.0)

    assert next_attempt(schedule, 1, now) == now + timedelta(seconds=60)
    assert next_attempt(schedule, 2, now) == now + timedelta(seconds=300)
    assert next_attempt(schedule, 9, now) == now + timedelta(seconds=300)


def test_queue_folder_is_private(tmp_path):
    MessageQueue(tmp_path / "queue")

    assert (tmp_path / "queue").stat().st_mode & 0o077 == 0
