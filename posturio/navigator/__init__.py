"""Navigator: grounded search over admin-approved sources (issues 7 and 8)."""
