"""Site config, environments, inventory, YAML with positions, the workspace."""
