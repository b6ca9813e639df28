"""End-to-end workflows that compose the library's parts: what the CLI commands run."""
