"""The `dockagent` command: `main` parses and dispatches, one module per command group.

Commands only parse, call the packages below and print (`output`); the rules they apply are the
daemon's own (agent.ingest.policy, agent.custody, agent.reporting), never a copy of them.
"""
