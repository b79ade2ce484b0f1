"""What an attack is made of: sampled packets and their sampling rate, the pcap, the
top sources, the attack's class and its signatures.

Stage 3: may import `link` and `detect`.
"""
