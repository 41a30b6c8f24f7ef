"""Ready-made components (SAGE Kernel's sage.common.components)."""
