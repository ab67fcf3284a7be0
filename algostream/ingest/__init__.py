"""The feed ingestor: WebSocket connections to an exchange, book sync, publish to md.* topics."""
