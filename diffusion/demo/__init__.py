"""Kiln's own demo text-to-image model: the captioned shape data set it learns from and the
pixel metrics that check what it draws. Torch-free (numpy and PIL only)."""
