"""The log's shape in one process: one line a record (text or JSON), secrets out, RQ quiet, warnings once."""

from __future__ import annotations

import io
import json
import logging

import pytest

from tests.conftest import SECRET
from webhooks.config import ConfigError, Settings
from webhooks.telemetry.logs import (
    TEXT_FORMAT,
    JsonFormatter,
    OneLineFormatter,
    configure_logging,
    log_format,
    log_level,
    not_a_handler_job_error,
    redact_logs,
    rq_level,
    warn_once,
)


def _record(message: str, *args, exc: BaseException | None = None, name: str = "webhooks.test") -> logging.LogRecord:
    exc_info = (type(exc), exc, exc.__traceback__) if exc is not None else None
    return logging.getLogger(name).makeRecord(name, logging.ERROR, __file__, 1, message, args, exc_info)


def _raised(message: str) -> BaseException:
    try:
        raise ConnectionError(message)
    except ConnectionError as err:
        return err


def test_a_traceback_is_folded_into_its_line_and_unfolds_to_the_original():
    err = _raised("refused")
    line = OneLineFormatter(TEXT_FORMAT).format(_record("handler failed\nsecond line", exc=err))
    assert "\n" not in line
    assert " webhooks.test ERROR handler failed\\nsecond line\\nTraceback (most recent call last):\\n" in line
    unfolded = line.replace("\\n", "\n")
    assert unfolded.endswith("ConnectionError: refused")
    assert "in _raised\n    raise ConnectionError(message)\n" in unfolded


def test_json_lines_carry_time_level_logger_message_and_exc():
    line = JsonFormatter().format(_record("handler=%s failed", "slack", exc=_raised("refused\nby peer")))
    assert "\n" not in line
    entry = json.loads(line)
    assert set(entry) == {"time", "level", "logger", "message", "exc"}
    assert entry["level"] == "ERROR" and entry["logger"] == "webhooks.test"
    assert entry["message"] == "handler=slack failed"
    assert entry["exc"].startswith("Traceback (most recent call last):\n")
    assert entry["exc"].endswith("ConnectionError: refused\nby peer")
    assert entry["time"].endswith("+00:00")
    assert "exc" not in json.loads(JsonFormatter().format(_record("fine")))


@pytest.mark.parametrize("formatter", [OneLineFormatter(TEXT_FORMAT), JsonFormatter()], ids=["text", "json"])
def test_a_secret_in_an_exception_message_is_redacted_in_either_format(formatter):
    redact_logs(Settings(webhook_secret=SECRET), {})
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(formatter)
    log = logging.getLogger("webhooks.test.redaction")
    log.addHandler(handler)
    try:
        try:
            raise ConnectionError(f"POST https://hooks.example.com/in?token={SECRET} failed")
        except ConnectionError:
            log.exception("handler failed for %s", f"?token={SECRET}")
    finally:
        log.removeHandler(handler)
    output = stream.getvalue()
    assert output.count("\n") == 1  # one record, one line
    assert SECRET not in output
    assert output.count("token=[secret]") == 2  # the message and the traceback


def test_settings_are_checked_with_messages_naming_them():
    assert log_format({}) == "text" and log_format({"LOG_FORMAT": "JSON"}) == "json"
    assert log_level({}) == "INFO" and log_level({"LOG_LEVEL": "debug"}) == "DEBUG"
    with pytest.raises(ConfigError, match="LOG_FORMAT must be 'text' or 'json', got 'logfmt'"):
        log_format({"LOG_FORMAT": "logfmt"})
    with pytest.raises(ConfigError, match="LOG_LEVEL must be one of DEBUG, INFO, WARNING, ERROR, CRITICAL"):
        log_level({"LOG_LEVEL": "loud"})


def test_rq_says_its_per_job_lines_only_at_debug():
    assert rq_level("DEBUG") == "DEBUG"
    assert {rq_level(level) for level in ("INFO", "WARNING", "ERROR")} == {"WARNING"}


def test_rqs_traceback_of_a_handler_job_is_left_to_the_batch_line():
    record = _record("Worker w: job j: exception raised while executing (x)\nTraceback ...", name="rq.worker")
    record.func = "webhooks.pipeline.jobs.handle"
    assert not not_a_handler_job_error(record)
    record.func = "webhooks.pipeline.jobs.dispatch"  # no batch line of ours: RQ's stays
    assert not_a_handler_job_error(record)
    assert not_a_handler_job_error(_record("anything else"))


def test_configure_logging_puts_one_handler_on_the_root_logger():
    root = logging.getLogger()
    saved_handlers, saved_level = root.handlers[:], root.level
    saved_rq = logging.getLogger("rq").level
    try:
        first = configure_logging({"LOG_FORMAT": "json"})
        second = configure_logging({"LOG_LEVEL": "DEBUG"})
        assert root.handlers == [second] and first not in root.handlers  # replaced, not added
        assert isinstance(second.formatter, OneLineFormatter) and not second.filters  # DEBUG: RQ's lines too
        assert logging.getLogger("rq").level == logging.DEBUG
        third = configure_logging({})
        assert third.filters and logging.getLogger("rq").level == logging.WARNING
    finally:
        root.handlers[:] = saved_handlers
        root.setLevel(saved_level)
        logging.getLogger("rq").setLevel(saved_rq)


def test_a_start_up_warning_is_said_once_per_process(caplog):
    log = logging.getLogger("webhooks.test.once")
    message = f"a warning of this test only {id(caplog)}"
    with caplog.at_level(logging.WARNING, logger="webhooks.test.once"):
        warn_once(log, message)
        warn_once(log, message)
        warn_once(log, message + " (another)")
    ours = [r.getMessage() for r in caplog.records if r.name == log.name]  # not another library's warning
    assert ours == [message, message + " (another)"]
