"""Kafka adapters: local broker runner, topic catalog and provisioning, producer settings, DLQ."""
