"""tagwarden's device agent: runs the target state the server gives it in a container engine.

It never imports ``tagwarden`` (the server): a device installs this distribution alone.
"""

__version__ = "0.1.0"
