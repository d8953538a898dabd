"""App definitions: the container configuration a device runs beside each app's pinned image."""
