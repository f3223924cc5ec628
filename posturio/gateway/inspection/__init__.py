"""Prompt inspection: find secrets and personal data in what goes upstream, fast,
with evidence and without ever keeping the raw value (issue 4; policy comes next)."""
