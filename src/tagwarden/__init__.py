"""tagwarden: the gate between container registries and a fleet of devices."""

__version__ = "0.1.0"
