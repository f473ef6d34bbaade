"""`micromarketing console`: the operator's web page over the output topics of a running stack.

A shell: it reads the topics (`follow`), keeps bounded aggregates of them (`state`), replays
edited rules over recent input for a dry run (`dryrun`) and serves the page and its JSON API
(`server`); `command` is the CLI entry point. The engine never imports it.
"""
