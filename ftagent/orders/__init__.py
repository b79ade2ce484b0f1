"""What the control plane orders the node: fleet orders turned into rules (and the
file `ftagent rules` reads them from), overrides of the node's settings, operator
block/unblock.

Stage 6: may import every stage before it.
"""
