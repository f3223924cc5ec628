"""Entry point module for `dramatiq posturio.workers.entry` (what `posturio worker` runs)."""

from posturio.config import get_settings
from posturio.platform.logging import configure_logging
from posturio.workers.broker import setup_broker

_settings = get_settings()
configure_logging(_settings.log_level, json=_settings.log_json)
broker = setup_broker(_settings)
