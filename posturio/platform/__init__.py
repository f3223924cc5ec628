"""The shared layer: settings use, database, tenancy, auth, audit, console, workers glue."""
