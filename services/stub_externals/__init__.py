"""Dev/demo-only fake external systems (CRM, CMS, CSS) with fault injection.

Never deployed to production: it exists so tests and ``make run`` exercise the
sync-connector against a real HTTP server.
"""
