/* SPDX-License-Identifier: Apache-2.0 */
/* Benchmark only (bench/bench_datapath.py): the XDP SYN-cookie alternative's core cost,
 * bpf_tcp_raw_gen_syncookie_ipv4 on an arriving SYN (Ethernet + 20-byte IPv4 + TCP), as
 * the kernel's xdp_synproxy selftest does before it rewrites the SYN into a SYN-ACK and
 * sends it with XDP_TX. Drops the packet afterwards: it measures, it answers nothing. */
#include <uapi/linux/bpf.h>
#include <uapi/linux/if_ether.h>
#include <uapi/linux/ip.h>
#include <uapi/linux/tcp.h>

int xdp_syncookie(struct xdp_md *ctx)
{
    void *data = (void *)(long)ctx->data;
    void *data_end = (void *)(long)ctx->data_end;
    struct iphdr *ip = data + sizeof(struct ethhdr);
    struct tcphdr *th = (void *)(ip + 1);
    if ((void *)(th + 1) > data_end)
        return XDP_PASS;
    __s64 cookie = bpf_tcp_raw_gen_syncookie_ipv4(ip, th, sizeof(*th));
    return cookie < 0 ? XDP_PASS : XDP_DROP;
}
