"""Who may do what: authentication and roles, tokens and contact keys (CLIs), the operation log."""
