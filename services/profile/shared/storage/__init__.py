"""The database plumbing every room shares: tables, unit of work, contact sealing, customer rows."""
