"""What every room uses: the ports and use-case plumbing, storage (tables, unit of work) and HTTP plumbing."""
