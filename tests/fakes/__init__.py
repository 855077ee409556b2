"""In-memory fakes of the services' ports, for tests that run in milliseconds without a database."""
