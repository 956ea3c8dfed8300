"""The request flow every endpoint shares: admission, reading bodies, storing, answering; /metrics, OpenAPI."""
