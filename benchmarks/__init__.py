"""MCP Engine benchmarks: every figure is a ratio or is reported beside a baseline from the same run."""
