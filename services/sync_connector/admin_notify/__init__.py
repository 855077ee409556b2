"""Admin notifications (seed 000 6.2 notifyAdmin): each failure that needs a person, one mail per cause and window."""
