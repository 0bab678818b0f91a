"""Integrations with other frameworks; each imports its framework (an optional extra) only when called."""
