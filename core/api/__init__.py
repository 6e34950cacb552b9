"""The network adapters: thin layers over ExecutionService and the store."""
