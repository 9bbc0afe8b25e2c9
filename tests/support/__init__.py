"""Helpers shared by test suites: real services started for the duration of a session."""
