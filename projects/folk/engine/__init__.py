"""Runner-level additions (hooks) of FOLK."""
