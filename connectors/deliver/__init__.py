"""Trigger delivery: `micromarketing deliver --to webhook URL | --to smtp HOST:PORT`.

`loop.Deliverer` consumes the trigger topics (at least once) and hands each non-holdout,
consented trigger to a `sender.Sender`: `webhook.WebhookSender` or `smtp.SmtpSender`.
"""
