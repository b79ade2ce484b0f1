"""Which rules, and the rules in force: what is never blocked (and the node's own
addresses), the socket guard, the planner, the mitigator.

Stage 4: may import `link`, `detect` and `evidence`.
"""
