"""The uplink itself: is the link saturated, is it losing packets.

Stage 1 of the pipeline: it imports no other stage.
"""
