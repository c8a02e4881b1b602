"""Kiln's model side: architectures, loading, sampling and devices (torch only, no graph code)."""
