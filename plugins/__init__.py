"""Built-in plugins of hbench: lanes, checks, probes, reporters, agents, tools."""
