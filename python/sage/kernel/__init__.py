"""SAGE Kernel's API over the SAGE engine: environments, data streams, services (sage.kernel.api)."""
