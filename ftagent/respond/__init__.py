"""One incident's response from confirmation to resolution: the incident report, the
journal that outlives a crash, the shielded sink the loop reports through.

Stage 5: may import every stage before it.
"""
