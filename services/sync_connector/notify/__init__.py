"""Customer notifications (seed 000 5.1, 7.3): an e-mail and an SMS for every committed name change.

Driven by the same events on ``customer-profile.v1`` as the external systems, in
its own consumer group (``<group prefix>.notify``); records in
``sync.notification_records``; contact data fetched from the profile service at
send time, never stored here. See docs/notifications.md.
"""
