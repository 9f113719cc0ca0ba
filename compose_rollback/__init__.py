"""compose-rollback: pinned, gated, revertible deploys for Docker Compose."""

__version__ = "0.1.0"
