"""Rebuild a past model version from its record and prove how the rebuild compares."""
