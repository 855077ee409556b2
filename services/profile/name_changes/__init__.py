"""Name-change applications: submit, decide, apply to the profile (history, outbox event)."""
