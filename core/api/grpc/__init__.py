"""gRPC mcp.v2.MCPEngine (grpc.aio); the stubs here are generated from proto/mcp/v2/mcp.proto."""
