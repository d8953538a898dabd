"""Devices and the device API: registration, keys, target state, reports."""
