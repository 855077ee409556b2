"""The HTTP plumbing every room shares: problems, idempotency, input guard, parameters, common bodies."""
