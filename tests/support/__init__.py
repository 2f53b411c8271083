"""What the test folders share: the local cloud started for tests, SDK clients of it, waits, clocks and media."""
