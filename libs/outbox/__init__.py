"""Transactional outbox: a table, a writer used inside a unit of work, and a relay.

Knows nothing of the profile domain: rows carry an aggregate key, a JSON payload
and ready-made Kafka headers.
"""
