"""The network-namespace lab (netns.py) and the trafgen flood runner (trafgen.py)."""
