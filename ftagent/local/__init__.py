"""What the node shows on the node itself: `/health` and `/metrics`, the views they
format, the log format.

Stage 7, the last: may import every stage.
"""
