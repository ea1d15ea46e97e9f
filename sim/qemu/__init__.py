"""tinybuild's QEMU backend (``sim=qemu``): a second, independent simulator for cross-checks."""
