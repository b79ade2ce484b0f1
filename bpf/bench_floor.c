/* SPDX-License-Identifier: Apache-2.0 */
/* The benchmark floor: the cheapest XDP program there is (bench/bench_datapath.py). */
#include <uapi/linux/bpf.h>

int xdp_floor(struct xdp_md *ctx)
{
    return XDP_DROP;
}
