"""Tenant policy: versioned rules that turn inspection findings into a decision."""
