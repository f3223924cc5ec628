"""The gateway: the OpenAI-compatible /v1 API, providers, routing, limits, usage."""
