"""Offline index builder and the index artifact the server loads."""
