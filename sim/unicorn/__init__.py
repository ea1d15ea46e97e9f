"""tinybuild's default simulator backend (Unicorn engine + native block counting)."""
