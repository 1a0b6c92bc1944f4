"""The KServe V2 / Triton gRPC protocol: a third adapter over the engine (see docs/grpc.md)."""
