"""Customer profiles: create, edit, delete, recycle bin, versions and rollback, contact details for notifications."""
