"""Model architectures whose attribute paths are the original checkpoint keys."""
