"""The KServe V2 / Triton HTTP protocol: a second adapter over the engine (see docs/v2.md)."""
