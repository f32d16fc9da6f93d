"""The camera simulator: test, demo and benchmark tooling, never shipped in the agent package."""
