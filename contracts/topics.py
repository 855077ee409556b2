"""Kafka topic names."""

from __future__ import annotations

CUSTOMER_PROFILE_TOPIC = "customer-profile.v1"
# One dead-letter topic per external system: customer-profile.v1.dlq.crm, .cms, .css.
DEAD_LETTER_SYSTEMS = ("CRM", "CMS", "CSS")


def dead_letter_topic(system_code: str, topic: str = CUSTOMER_PROFILE_TOPIC) -> str:
    """The dead-letter topic of one external system for ``topic``."""
    return f"{topic}.dlq.{system_code.lower()}"


DEAD_LETTER_TOPICS = tuple(dead_letter_topic(code) for code in DEAD_LETTER_SYSTEMS)
