"""The composition root: configuration, provisioning, wiring and the `sanscmp` command."""
