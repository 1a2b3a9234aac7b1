"""synartifact-hf."""
