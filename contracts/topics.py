"""Kafka topic names."""

CUSTOMER_PROFILE_TOPIC = "customer-profile.v1"
