"""What a digest holds: its signatures and its sizes, stored once per (image, digest)."""
