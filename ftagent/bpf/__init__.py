"""The kernel side: build and pin bpf/ in a short-lived process, attach, typed map access.

- `ftagent.bpf.loader.XdpDatapath.open(interface, LoadOptions(...), Settings(...))`
  -> Datapath (reuses the interface's pinned build when it is the wanted one)
- `python -m ftagent.bpf.compile` (ftagent.bpf.compile): the only place bcc and LLVM run
- `ftagent.bpf.pins` (the pin directory and its manifest), `ftagent.bpf.layout` (map
  layouts exported from bcc's types), `ftagent.bpf.libbpf` (bpf(2) through libbpf)
- `ftagent.bpf.maps.DatapathMaps` (typed map API, one module per job behind it),
  `ftagent.bpf.pinned.open_pinned()` (the running agent's maps, for the command line)

Only ftagent.bpf.compile and ftagent.bpf.program import bcc, so the agent never does.
"""
