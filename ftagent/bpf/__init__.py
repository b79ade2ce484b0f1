"""The kernel side: compile bpf/ with bcc, attach XDP, typed access to the maps.

- `ftagent.bpf.loader.XdpDatapath.open(interface, *, mode="auto", top_sources_size=16384,
  sample_rate=0, src_insert_one_in=8, pin_dir=Path("/sys/fs/bpf/ftagent"))` -> Datapath
- `ftagent.bpf.headers.find_kernel_headers()` / `use_kernel_headers()`
- `ftagent.bpf.maps.DatapathMaps` (typed map API), `ftagent.bpf.pinned.open_pinned()`
  (the running agent's maps, for the command line)
- `ftagent.bpf.testrun.test_run()` (BPF_PROG_TEST_RUN through libbcc)

Modules import bcc lazily, so importing this package needs no bcc.
"""
