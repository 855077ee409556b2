"""The sync-connector: consumes customer-profile events and pushes them to each external system."""
