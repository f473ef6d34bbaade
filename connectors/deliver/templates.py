"""Email templates: Jinja2, autoescaped for HTML, looked up per campaign and offer.

For each part (`subject.txt`, `html`, `txt`) the first existing of `{campaign}.{offer}.<part>`,
`{campaign}.<part>` and `default.<part>` is used; a custom folder is searched before the
defaults shipped in `connectors/deliver/templates/`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jinja2

from connectors.deliver.sender import Profile, Trigger

DEFAULT_TEMPLATES = Path(__file__).resolve().parent / "templates"
PARTS = ("subject.txt", "html", "txt")
_SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


class TemplateError(Exception):
    """No usable template, or a template failed to render."""


@dataclass(frozen=True)
class RenderedEmail:
    """A rendered email: one-line subject, plain text body and optional HTML body."""

    subject: str
    text: str
    html: str | None


def humanize(value: object) -> str:
    """`free-shipping` -> `Free shipping`."""
    text = re.sub(r"[-_]+", " ", str(value or "")).strip()
    return text[:1].upper() + text[1:]


def candidates(campaign: str | None, offer: str | None, part: str) -> list[str]:
    """Template names to try for `part`, most specific first."""
    names = []
    if campaign and _SAFE_NAME.match(campaign):
        if offer and _SAFE_NAME.match(offer):
            names.append(f"{campaign}.{offer}.{part}")
        names.append(f"{campaign}.{part}")
    names.append(f"default.{part}")
    return names


class TemplateRenderer:
    """Renders the email of a trigger from a templates folder (plus the shipped defaults)."""

    def __init__(self, folder: str | Path | None = None) -> None:
        loaders: list[jinja2.BaseLoader] = []
        if folder is not None:
            path = Path(folder)
            if not path.is_dir():
                raise ValueError(f"templates folder not found: {path}")
            loaders.append(jinja2.FileSystemLoader(path))
        loaders.append(jinja2.FileSystemLoader(DEFAULT_TEMPLATES))
        self.env = jinja2.Environment(
            loader=jinja2.ChoiceLoader(loaders),
            autoescape=jinja2.select_autoescape(
                enabled_extensions=("html", "htm"), default_for_string=False, default=False
            ),
            keep_trailing_newline=True,
        )
        self.env.filters["humanize"] = humanize

    def select(self, campaign: str | None, offer: str | None, part: str) -> jinja2.Template | None:
        """The template used for `part`, or None when none exists."""
        try:
            return self.env.select_template(candidates(campaign, offer, part))
        except jinja2.TemplatesNotFound:
            return None

    @staticmethod
    def context(trigger: Trigger, profile: Profile | None) -> dict[str, Any]:
        """Variables templates see: the trigger's fields, `trigger`, `email`, `products`."""
        products = trigger.get("products") or []
        return {
            **trigger,
            "trigger": trigger,
            "products": [str(p) for p in products],
            "segments": list(trigger.get("segments") or []),
            "email": profile.email if profile else None,
        }

    def render(self, trigger: Trigger, profile: Profile | None) -> RenderedEmail:
        """Render subject, text and HTML of the email for `trigger`."""
        campaign = _str_or_none(trigger.get("campaign"))
        offer = _str_or_none(trigger.get("offer"))
        ctx = self.context(trigger, profile)
        parts: dict[str, str | None] = {}
        try:
            for part in PARTS:
                tmpl = self.select(campaign, offer, part)
                parts[part] = tmpl.render(ctx) if tmpl is not None else None
        except jinja2.TemplateError as exc:
            raise TemplateError(f"template error for campaign {campaign!r}: {exc}") from exc
        subject = " ".join((parts["subject.txt"] or "").split())
        if not subject or parts["txt"] is None:
            raise TemplateError(f"no subject or text template for campaign {campaign!r}")
        return RenderedEmail(subject=subject, text=parts["txt"], html=parts["html"])


def _str_or_none(value: object) -> str | None:
    return str(value) if value not in (None, "") else None
