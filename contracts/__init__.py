"""Public contracts: Kafka topics, event payloads and their CloudEvents mapping.

This package imports nothing of ours, so external teams can depend on it alone.
"""
