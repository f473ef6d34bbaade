"""Template lookup (offer, campaign, default; custom folder first), rendering and the email."""

from __future__ import annotations

from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest

from connectors.deliver.sender import DeliveryError, Profile
from connectors.deliver.smtp import SmtpSender, message_id, parse_hostport
from connectors.deliver.templates import TemplateError, TemplateRenderer, candidates, humanize

TRIGGER: dict[str, Any] = {
    "trigger_id": "7f3a-cart-abandonment-c42",
    "kind": "retargeting",
    "campaign": "cart-abandonment",
    "consumer_id": "c42",
    "offer": "free-shipping",
    "products": ["road-bike-900", "<script>alert(1)</script>"],
    "segments": ["road-amateur-women"],
    "holdout": False,
}
PROFILE = Profile(email="ann@example.com", consented=True)


def write(folder: Path, name: str, text: str) -> None:
    (folder / name).write_text(text, encoding="utf-8")


def test_candidates_most_specific_first() -> None:
    assert candidates("cart", "free", "html") == ["cart.free.html", "cart.html", "default.html"]
    assert candidates("cart", None, "txt") == ["cart.txt", "default.txt"]
    assert candidates("../etc", "x", "txt") == ["default.txt"]
    assert candidates("cart", "../x", "txt") == ["cart.txt", "default.txt"]


def test_lookup_order_offer_then_campaign_then_default(tmp_path: Path) -> None:
    write(tmp_path, "cart-abandonment.free-shipping.subject.txt", "offer {{ offer }}")
    write(tmp_path, "cart-abandonment.subject.txt", "campaign {{ campaign }}")
    write(tmp_path, "cart-abandonment.txt", "campaign text")
    write(tmp_path, "default.subject.txt", "custom default")
    renderer = TemplateRenderer(tmp_path)

    assert renderer.render(TRIGGER, PROFILE).subject == "offer free-shipping"
    other_offer = {**TRIGGER, "offer": "vip-20"}
    email = renderer.render(other_offer, PROFILE)
    assert email.subject == "campaign cart-abandonment"
    assert email.text == "campaign text"
    # no html in the custom folder: the shipped default is used
    assert email.html is not None and "<html" in email.html
    other_campaign = renderer.render({**TRIGGER, "campaign": "winback-60d"}, PROFILE)
    assert other_campaign.subject == "custom default"


def test_default_templates_show_offer_and_products() -> None:
    email = TemplateRenderer().render(TRIGGER, PROFILE)
    assert "Free shipping" in email.subject
    assert "\n" not in email.subject
    for body in (email.text, email.html or ""):
        assert "Free shipping" in body
        assert "road-bike-900" in body
        assert TRIGGER["trigger_id"] in body


def test_html_is_autoescaped_text_is_not() -> None:
    email = TemplateRenderer().render(TRIGGER, PROFILE)
    assert email.html is not None
    assert "<script>" not in email.html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in email.html
    assert "<script>alert(1)</script>" in email.text


def test_subject_is_one_line(tmp_path: Path) -> None:
    write(tmp_path, "default.subject.txt", "Hello\r\nBcc: evil@example.com\n")
    assert TemplateRenderer(tmp_path).render(TRIGGER, PROFILE).subject == (
        "Hello Bcc: evil@example.com"
    )


def test_template_errors_are_reported(tmp_path: Path) -> None:
    write(tmp_path, "cart-abandonment.txt", "{{ products | nosuchfilter }}")
    with pytest.raises(TemplateError):
        TemplateRenderer(tmp_path).render(TRIGGER, PROFILE)


def test_missing_templates_folder() -> None:
    with pytest.raises(ValueError):
        TemplateRenderer("/nonexistent/templates")


def test_humanize() -> None:
    assert humanize("free-shipping") == "Free shipping"
    assert humanize("vip_20") == "Vip 20"
    assert humanize(None) == ""


def test_email_headers_and_parts() -> None:
    sender = SmtpSender("127.0.0.1", 25, sender="Shop <offers@shop.example>")
    msg = sender.build(TRIGGER, PROFILE)
    parsed = message_from_bytes(msg.as_bytes(), policy=policy.default)
    assert isinstance(parsed, EmailMessage)
    assert parsed["To"] == "ann@example.com"
    assert parsed["X-Trigger-Id"] == TRIGGER["trigger_id"]
    assert parsed["Message-ID"] == "<7f3a-cart-abandonment-c42@shop.example>"
    assert parsed.get_content_type() == "multipart/alternative"
    text = parsed.get_body(("plain",))
    html = parsed.get_body(("html",))
    assert text is not None and "road-bike-900" in text.get_content()
    assert html is not None and "Free shipping" in html.get_content()


def test_message_id_is_stable_and_safe() -> None:
    assert message_id("t 1<>", "a@b.c") == message_id("t 1<>", "a@b.c") == "<t_1__@b.c>"
    assert message_id("t1", "no-domain") == "<t1@no-domain>"


def test_no_email_is_a_permanent_error() -> None:
    sender = SmtpSender("127.0.0.1", 25, sender="offers@shop.example")
    with pytest.raises(DeliveryError) as info:
        sender.send(TRIGGER, Profile(email=None))
    assert not info.value.retryable


@pytest.mark.parametrize(
    ("target", "expected"),
    [("mail.example.com:2525", ("mail.example.com", 2525)), ("localhost", ("localhost", 25)),
     ("[::1]:587", ("::1", 587))],
)  # fmt: skip
def test_parse_hostport(target: str, expected: tuple[str, int]) -> None:
    assert parse_hostport(target) == expected


@pytest.mark.parametrize("target", ["host:x", "host:0", ":25", "host:70000"])
def test_parse_hostport_rejects(target: str) -> None:
    with pytest.raises(ValueError):
        parse_hostport(target)
