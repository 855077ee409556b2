"""The outbox's administration: list, inspect and redrive rows, over HTTP and the command line."""
