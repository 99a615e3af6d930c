"""Sub-commands of the `aidetect` CLI, one module per family."""
