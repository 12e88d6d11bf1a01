"""End-to-end tests that drive real registry clients against the server."""
