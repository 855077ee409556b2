"""Backup points, restores from them, and the daily maintenance (backup point, recycle-bin purge)."""
