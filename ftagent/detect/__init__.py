"""Detection: per-class rates from the kernel's counters, the learned baseline and the
thresholds it gives, the detector that confirms an attack, its severity, one-second points.

Stage 2: may import `link`.
"""
