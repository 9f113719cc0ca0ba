"""Integration fixtures (images, loopback registry, per-test compose projects)."""
