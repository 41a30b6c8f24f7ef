"""Shared definitions of the sage package (SAGE Kernel's sage.common)."""
