"""Secrets never appear in URLs, reprs or log lines."""

from __future__ import annotations

import logging

import pytest

from inventory.http import redact
from inventory.logs import RedactingFilter
from inventory.secrets import Secret


def test_redact_url_masks_signature_and_key() -> None:
    url = "http://h/iaas/?access_key_id=AK&action=DescribeImages&signature=abc%2B%3D&zone=z"
    shown = redact(url)
    assert "abc" not in shown and "AK&" not in shown
    assert "action=DescribeImages" in shown and "signature=***" in shown


def test_log_filter_scrubs_known_secrets(caplog: pytest.LogCaptureFixture) -> None:
    secret = Secret("very-secret-value-123")
    logger = logging.getLogger("test.redaction")
    redacting = RedactingFilter()
    logger.addFilter(redacting)
    try:
        with caplog.at_level(logging.INFO, logger="test.redaction"):
            logger.info("calling with %s and %r", secret.reveal(), secret)
            try:
                raise RuntimeError(f"boom {secret.reveal()}")
            except RuntimeError:
                logger.exception("failed")
    finally:
        logger.removeFilter(redacting)
    text = caplog.text + "".join(r.exc_text or "" for r in caplog.records)
    assert "very-secret-value-123" not in text
    assert "***" in text


def test_secret_is_not_picklable() -> None:
    import pickle

    with pytest.raises(TypeError):
        pickle.dumps(Secret("abcdef"))


def test_authorization_header_trace_is_masked() -> None:
    from inventory.logs import HeaderRedactingFilter

    record = logging.LogRecord(
        "httpcore.http11",
        logging.DEBUG,
        __file__,
        1,
        "send_request_headers.started request=%s",
        ("[(b'Host', b'h'), (b'Authorization', b'TC3-HMAC-SHA256 Credential=AKIDx/d')]",),
        None,
    )
    assert HeaderRedactingFilter().filter(record)
    assert "AKIDx" not in record.getMessage()
    assert "(b'Host', b'h')" in record.getMessage()
