"""What the admins must hear of (failed and refused updates, parked outbox rows), for the sync-connector."""
