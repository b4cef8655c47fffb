"""The wire: serde, gRPC plumbing, peers, TLS, and the bounds on every call."""
