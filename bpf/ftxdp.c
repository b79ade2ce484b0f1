/* SPDX-License-Identifier: Apache-2.0 */
/*
 * ftxdp.c: the XDP data path (bcc dialect). Entry point: xdp_main.
 *
 * Per packet: parse (Ethernet + up to two VLAN tags, IPv4 with options/fragments,
 * IPv6 with extension headers, TCP/UDP/ICMP/ICMPv6), count (per-CPU, no atomics),
 * update top sources (sample and hold), apply drop rules that expire on their own
 * (fail open), consult the allow-list only when a rule would drop, sample 1 in N
 * to user space. Every packet gets exactly one verdict counter.
 *
 * Second entry point: tc_egress_learn (TC egress, clsact, direct-action) marks the peers
 * the node sends UDP to as known sources; it shares this module's maps.
 *
 * Options (cflags): -DFT_TOP_SOURCES_SIZE=N, -DFT_PERFBUF (perf buffer instead of a
 * ring buffer for samples, for kernels without BPF_MAP_TYPE_RINGBUF).
 */
#include <uapi/linux/bpf.h>
#include <uapi/linux/if_ether.h>
#include <uapi/linux/in.h>
#include <uapi/linux/pkt_cls.h>
#include <uapi/linux/ip.h>
#include <uapi/linux/ipv6.h>
#include <uapi/linux/tcp.h>
#include <uapi/linux/udp.h>

#include "ftmaps.h"

/* Never used by the program: it makes bcc generate the ctypes type of struct ft_sample
 * (b["sample_layout"].Leaf), which Python uses to decode ring/perf buffer records. */
BPF_ARRAY(sample_layout, struct ft_sample, 1);
/* The same for struct ft_wake, the record of the wake-up buffer. */
BPF_ARRAY(wake_layout, struct ft_wake, 1);

#ifdef FT_PERFBUF
BPF_PERF_OUTPUT(samples);
/* Records are built here, not on the stack (a 144-byte stack record defeats the
 * verifier's state pruning). */
BPF_PERCPU_ARRAY(sample_scratch, struct ft_sample, 1);
BPF_PERF_OUTPUT(wakes);
#else
BPF_RINGBUF_OUTPUT(samples, FT_RINGBUF_PAGES);
/* Wake-ups have a buffer of their own: the agent blocks on it in a thread of its own,
 * while samples are drained by the loop (ftshared.h, struct ft_wake). */
BPF_RINGBUF_OUTPUT(wakes, FT_WAKE_PAGES);
#endif

#define FT_NSEC_PER_SEC 1000000000ULL

/* guard_spares' answers */
#define FT_GUARD_SPARED    1  /* a socket wants it, or a known source: counted as spared */
#define FT_GUARD_NEWCOMER  2  /* a repeating newcomer within its budget: passes, not spared */

/* Wire layouts parsed here only (not shared with Python). */
struct ft_vlan_hdr {
    __be16 tci;
    __be16 encap_proto;
};

struct ft_v6_opt_hdr {
    __u8 nexthdr;
    __u8 hdrlen;  /* 8-octet units, not counting the first 8 */
};

struct ft_v6_frag_hdr {
    __u8 nexthdr;
    __u8 reserved;
    __be16 frag_off;
    __be32 id;
};

/* What parsing learned about a packet. */
struct ft_pkt {
    struct ft_in6 saddr6;
    struct ft_in6 daddr6;
    __be32 saddr4;
    __be32 daddr4;
    __be16 sport;
    __be16 dport;
    __u8 family;     /* 4, 6, or 0 when no IP header was read */
    __u8 proto;      /* L4 protocol number (valid when family != 0) */
    __u8 l3_ok;      /* the IP addresses were read (source rules can apply) */
    __u8 proto_ok;   /* the L4 protocol number is known (after IPv6 extension headers) */
    __u8 l4_ok;      /* the L4 header was read (ports/flags valid) */
    __u8 tcp_flags;
    __u8 fragment;   /* an IPv4 or IPv6 fragment */
    __u8 malformed;  /* a header was cut or invalid */
    __u8 verdict;    /* FT_V_*, parked here so the verifier merges the verdict paths */
    __u8 pad;
    __u16 l3_off;    /* offset of the IP header in the frame (valid when l3_ok) */
    __u16 l4_off;    /* offset of the L4 header (valid when l4_ok) */
    __u32 frag_id;   /* IPv4 identification or IPv6 fragment id (valid when fragment) */
};

/* Per-CPU scratch: the parse result, and the coarse clock cached per jiffy.
 * The parse result lives in map memory, not on the stack: map memory reads back as
 * unknown scalars, so the many parse paths merge into one verifier state instead of
 * multiplying through everything after parsing. */
struct ft_scratch {
    struct ft_pkt pkt;
    __u64 tick_jiffies;  /* the jiffy tick_ns was read in */
    __u64 tick_ns;       /* bpf_ktime_get_coarse_ns() read in that jiffy */
    __u64 wake_slot;     /* the wake slot counted in (coarse ns >> FT_WAKE_SLOT_SHIFT) */
    __u64 wake_count;    /* packets this CPU counted in it */
};
BPF_PERCPU_ARRAY(pkt_scratch, struct ft_scratch, 1);

/* The coarse clock (CLOCK_MONOTONIC at jiffy resolution) without a helper call per
 * packet: the verifier inlines bpf_jiffies64() into one load, and the coarse clock
 * moves only when the tick advances jiffies, so one bpf_ktime_get_coarse_ns() per CPU
 * per jiffy reads what a call per packet would, at most one tick behind (when read
 * between the tick's jiffies and clock updates). A helper call costs 20-30 ns on the
 * pass path (measured with bench/bench_datapath.py), about a sixth of the whole. */
static __always_inline __u64 coarse_now(struct ft_scratch *sc)
{
    __u64 j = bpf_jiffies64();
    if (j != sc->tick_jiffies) {
        sc->tick_jiffies = j;
        sc->tick_ns = bpf_ktime_get_coarse_ns();
    }
    return sc->tick_ns;
}

/* Wake the agent: once per wake slot per CPU, at the packet that brings this CPU's count
 * in the slot to cfg->wake_slot_packets (== not >=: exactly one event per slot). The pass
 * path pays a load and a compare while the count is off (0) and an add while it is on. */
static __always_inline void count_for_wake(struct xdp_md *ctx, struct ft_scratch *sc,
                                           struct ft_config *cfg)
{
    __u32 want = cfg->wake_slot_packets;
    if (!want)
        return;
    __u64 now = coarse_now(sc);
    __u64 slot = now >> FT_WAKE_SLOT_SHIFT;
    if (slot != sc->wake_slot) {
        sc->wake_slot = slot;
        sc->wake_count = 0;
    }
    if (++sc->wake_count != want)
        return;
    struct ft_wake w = {
        .slot_ns = slot << FT_WAKE_SLOT_SHIFT,
        .at_ns = now,
        .cpu = bpf_get_smp_processor_id(),
        .packets = want,
    };
#ifdef FT_PERFBUF
    wakes.perf_submit(ctx, &w, sizeof(w));
#else
    /* Forced: the agent's thread sleeps in epoll and must wake for this one record. */
    wakes.ringbuf_output(&w, sizeof(w), BPF_RB_FORCE_WAKEUP);
#endif
}

static __always_inline __u32 amp_index(__u16 sport)
{
    switch (sport) {
    case 19: return FT_AMP_19;
    case 53: return FT_AMP_53;
    case 123: return FT_AMP_123;
    case 161: return FT_AMP_161;
    case 389: return FT_AMP_389;
    case 1900: return FT_AMP_1900;
    case 3702: return FT_AMP_3702;
    case 5353: return FT_AMP_5353;
    case 11211: return FT_AMP_11211;
    default: return FT_AMP_OTHER;
    }
}

static __always_inline __u32 size_index(__u64 len)
{
    if (len <= 64) return FT_SIZE_LE_64;
    if (len <= 128) return FT_SIZE_LE_128;
    if (len <= 256) return FT_SIZE_LE_256;
    if (len <= 512) return FT_SIZE_LE_512;
    if (len <= 1024) return FT_SIZE_LE_1024;
    if (len <= 1500) return FT_SIZE_LE_1500;
    return FT_SIZE_GT_1500;
}

static __always_inline __u32 tcp_flag_index(__u8 f)
{
    /* FIN 0x01, SYN 0x02, RST 0x04, ACK 0x10 */
    if (f & 0x04) return FT_TCPF_RST;
    if (f & 0x02) return (f & 0x10) ? FT_TCPF_SYNACK : FT_TCPF_SYN;
    if (f & 0x01) return FT_TCPF_FIN;
    if (f & 0x10) return FT_TCPF_ACK;
    return FT_TCPF_OTHER;
}

/* Token bucket: 1 = drop (no token), 0 = pass. Capacity is one second of tokens. */
static __always_inline int bucket_empty(struct ft_rule *r, __u64 now)
{
    __u64 rate = r->rate_pps;
    __u64 elapsed = now - r->last_refill_ns;
    if (elapsed > FT_NSEC_PER_SEC)
        elapsed = FT_NSEC_PER_SEC;
    __u64 tokens = r->tokens + elapsed * rate;
    __u64 cap = rate * FT_NSEC_PER_SEC;
    if (tokens > cap)
        tokens = cap;
    r->last_refill_ns = now;
    if (tokens >= FT_NSEC_PER_SEC) {
        r->tokens = tokens - FT_NSEC_PER_SEC;
        return 0;
    }
    r->tokens = tokens;
    return 1;
}

static __always_inline int allowlisted(struct ft_pkt *p, struct ft_config *cfg)
{
    if (p->family == 4 && cfg->n_allow_v4) {
        struct ft_lpm_v4 k = {.prefixlen = 32};
        __builtin_memcpy(k.addr, &p->saddr4, 4);
        return allow_v4.lookup(&k) != NULL;
    }
    if (p->family == 6 && cfg->n_allow_v6) {
        struct ft_lpm_v6 k = {.prefixlen = 128};
        __builtin_memcpy(k.addr, p->saddr6.addr, 16);
        return allow_v6.lookup(&k) != NULL;
    }
    return 0;
}

/* The socket tables, asked with the packet's own tuple (remote source, local
 * destination), as the stack itself looks up an arriving segment or datagram. */
static __always_inline void fill_tuple(struct bpf_sock_tuple *t, struct ft_pkt *p)
{
    if (p->family == 4) {
        t->ipv4.saddr = p->saddr4;
        t->ipv4.daddr = p->daddr4;
        t->ipv4.sport = p->sport;
        t->ipv4.dport = p->dport;
    } else {
        __builtin_memcpy(t->ipv6.saddr, p->saddr6.addr, 16);
        __builtin_memcpy(t->ipv6.daddr, p->daddr6.addr, 16);
        t->ipv6.sport = p->sport;
        t->ipv6.dport = p->dport;
    }
}

#ifndef FT_NO_SOCKET_GUARD
/* 1 when a TCP socket of the node wants this segment (FT_GUARD_SOCKET, TCP). */
static __always_inline int tcp_wanted(struct xdp_md *ctx, struct ft_pkt *p)
{
    struct bpf_sock_tuple t = {};
    struct bpf_sock *sk;
    fill_tuple(&t, p);
    if (p->family == 4)
        sk = bpf_skc_lookup_tcp(ctx, &t, sizeof(t.ipv4), BPF_F_CURRENT_NETNS, 0);
    else
        sk = bpf_skc_lookup_tcp(ctx, &t, sizeof(t.ipv6), BPF_F_CURRENT_NETNS, 0);
    if (!sk)
        return 0;  /* no socket at all: the stack would answer with a RST */
    int wanted = 0;
    if (sk->state != BPF_TCP_LISTEN) {
        wanted = 1;  /* established, time-wait, or a request sock (handshake under way) */
    } else if ((p->tcp_flags & 0x16) == 0x02) {
        wanted = 1;  /* SYN to a listener: the kernel answers, with SYN cookies under load */
    } else if ((p->tcp_flags & 0x16) == 0x10) {
        /* An ACK at a listener completes a handshake only with a valid SYN cookie. The
         * helper needs the headers themselves: re-derive them from the parsed offsets. */
        void *data = (void *)(long)ctx->data;
        void *data_end = (void *)(long)ctx->data_end;
        __u32 l3 = p->l3_off & 0xfff;
        __u32 l4 = p->l4_off & 0xfff;
        struct tcphdr *th = data + l4;
        if ((void *)(th + 1) <= data_end) {
            if (p->family == 4) {
                struct iphdr *ip = data + l3;
                if ((void *)(ip + 1) <= data_end)
                    wanted = bpf_tcp_check_syncookie(sk, ip, sizeof(*ip), th, sizeof(*th)) == 0;
            } else {
                struct ipv6hdr *ip6 = data + l3;
                if ((void *)(ip6 + 1) <= data_end)
                    wanted = bpf_tcp_check_syncookie(sk, ip6, sizeof(*ip6), th, sizeof(*th)) == 0;
            }
        }
    }
    bpf_sk_release(sk);
    return wanted;
}

/* The state of the full socket the tuple finds (BPF_TCP_*), or -1 when none does.
 * TCP through bpf_sk_lookup_tcp (connections and listeners, no time-wait or request
 * socks): the same pointer type as the UDP lookup, so the verifier accepts the one
 * instruction clang makes of both state reads. */
static __always_inline int sock_state(struct xdp_md *ctx, struct bpf_sock_tuple *t, int v6,
                                      __u8 proto)
{
    struct bpf_sock *sk;
    if (proto == IPPROTO_TCP) {
        if (v6)
            sk = bpf_sk_lookup_tcp(ctx, t, sizeof(t->ipv6), BPF_F_CURRENT_NETNS, 0);
        else
            sk = bpf_sk_lookup_tcp(ctx, t, sizeof(t->ipv4), BPF_F_CURRENT_NETNS, 0);
    } else if (proto == IPPROTO_UDP) {
        if (v6)
            sk = bpf_sk_lookup_udp(ctx, t, sizeof(t->ipv6), BPF_F_CURRENT_NETNS, 0);
        else
            sk = bpf_sk_lookup_udp(ctx, t, sizeof(t->ipv4), BPF_F_CURRENT_NETNS, 0);
    } else {
        return -1;
    }
    if (!sk)
        return -1;
    int state = sk->state;
    bpf_sk_release(sk);
    return state;
}

/* 1 when a UDP socket of the node would receive this datagram; with `connected_only`,
 * only a connected socket (the node's own query, answered) counts: a connected UDP
 * socket is in state ESTABLISHED, a bound-only one in CLOSE. */
static __always_inline int udp_wanted(struct xdp_md *ctx, struct ft_pkt *p, int connected_only)
{
    struct bpf_sock_tuple t = {};
    fill_tuple(&t, p);
    int state = sock_state(ctx, &t, p->family == 6, IPPROTO_UDP);
    return state >= 0 && (!connected_only || state == BPF_TCP_ESTABLISHED);
}

/* 1 when an ICMP/ICMPv6 error quotes a flow of the node: the quoted packet is one the
 * node sent (source: the node), so the socket is found with the quoted tuple reversed,
 * as the stack does when it delivers the error. TCP: a connection, not a listener. */
static __always_inline int icmp_wanted(struct xdp_md *ctx, struct ft_pkt *p)
{
    void *data = (void *)(long)ctx->data;
    void *data_end = (void *)(long)ctx->data_end;
    __u8 *icmp = data + (p->l4_off & 0xfff);
    if ((void *)(icmp + 8) > data_end)
        return 0;
    __u8 type = icmp[0];
    struct bpf_sock_tuple t = {};
    __u8 proto;
    if (p->family == 4) {
        /* destination unreachable (incl. fragmentation needed), time exceeded, param. */
        if (p->proto != IPPROTO_ICMP || (type != 3 && type != 11 && type != 12))
            return 0;
        struct iphdr *in = (void *)(icmp + 8);
        if ((void *)(in + 1) > data_end || in->ihl < 5)
            return 0;
        __be16 *ports = (void *)in + in->ihl * 4;
        if ((void *)(ports + 2) > data_end)
            return 0;
        t.ipv4.saddr = in->daddr;
        t.ipv4.daddr = in->saddr;
        t.ipv4.sport = ports[1];
        t.ipv4.dport = ports[0];
        proto = in->protocol;
    } else {
        /* unreachable, packet too big, time exceeded, parameter problem */
        if (p->proto != IPPROTO_ICMPV6 || type < 1 || type > 4)
            return 0;
        struct ipv6hdr *in6 = (void *)(icmp + 8);
        if ((void *)(in6 + 1) > data_end)
            return 0;
        __be16 *ports = (void *)(in6 + 1);
        if ((void *)(ports + 2) > data_end)
            return 0;
        __builtin_memcpy(t.ipv6.saddr, &in6->daddr, 16);
        __builtin_memcpy(t.ipv6.daddr, &in6->saddr, 16);
        t.ipv6.sport = ports[1];
        t.ipv6.dport = ports[0];
        proto = in6->nexthdr;
    }
    int state = sock_state(ctx, &t, p->family == 6, proto);
    if (proto == IPPROTO_TCP)
        return state >= 0 && state != BPF_TCP_LISTEN;
    return state >= 0;
}

static __always_inline void frag_key(struct ft_frag_key *k, struct ft_pkt *p)
{
    if (p->family == 4)
        __builtin_memcpy(k->saddr, &p->saddr4, 4);
    else
        __builtin_memcpy(k->saddr, p->saddr6.addr, 16);
    k->id = p->frag_id;
    k->family = p->family;
}

/* 1 when the source is a known one (it talked with the node before). */
static __always_inline int source_known(struct ft_pkt *p)
{
    if (p->family == 4)
        return known_v4.lookup(&p->saddr4) != NULL;
    return known_v6.lookup(&p->saddr6) != NULL;
}

/* Sources first seen under a known-sources rule (see FT_GUARD_KNOWN): a two-way
 * set-associative table (set = hash of the address, two slots in one cache line), both
 * families in one. Not an LRU hash: a flood of random sources would pay an LRU insert per
 * packet (0.7-1.5 us measured); here a miss costs a store. A slot is taken over only once
 * its source has been silent for a second (the older of the two first), so random
 * sources cannot push out a client that keeps sending. */
BPF_ARRAY(newcomers, struct ft_newcomer_set, FT_NEWCOMERS_SETS);

static __always_inline int newcomer_is(struct ft_newcomer *n, struct ft_pkt *p)
{
    if (p->family == 4)
        return n->family == 4 && *(__u32 *)n->addr == p->saddr4;
    __u64 *a = (__u64 *)n->addr;
    __u64 *b = (__u64 *)p->saddr6.addr;
    return n->family == 6 && a[0] == b[0] && a[1] == b[1];
}

/* Its own budget: newcomer_source_pps in windows of 2^30 ns (about a second); races
 * between CPUs only blur the count. */
static __always_inline int newcomer_budget_left(struct ft_newcomer *n, __u64 now, __u32 budget)
{
    __u32 window = now >> 30;
    n->last_ns = now;
    if (n->window != window) {
        n->window = window;
        n->packets = 0;
    }
    if (n->packets >= budget)
        return 0;
    n->packets++;
    return 1;
}

/* Second chance for a source no one knows: 1 when it sent before (its set holds it) and
 * its own budget this second has room; a source seen for the first time takes a slot
 * (when one is free or silent for a second) and gets 0: its first packet takes the shared
 * budget. Only reached under a known-sources rule: the attack path pays it, peace time
 * does not. */
static __always_inline int newcomer_passes(struct ft_pkt *p, struct ft_config *cfg)
{
    __u32 budget = cfg->newcomer_source_pps;
    if (!budget)
        return 0;
    __u32 h;
    if (p->family == 4) {
        h = p->saddr4;
    } else {
        __u32 *w = (__u32 *)p->saddr6.addr;
        h = w[0] ^ w[1] ^ w[2] ^ w[3];
    }
    __u32 idx = (h * 2654435761u) >> (32 - FT_NEWCOMERS_BITS);
    struct ft_newcomer_set *set = newcomers.lookup(&idx);
    if (!set)
        return 0;
    __u64 now = bpf_ktime_get_coarse_ns();  /* the attack path: one helper call */
    if (newcomer_is(&set->slot[0], p))
        return newcomer_budget_left(&set->slot[0], now, budget);
    if (newcomer_is(&set->slot[1], p))
        return newcomer_budget_left(&set->slot[1], now, budget);
    struct ft_newcomer *n = set->slot[0].last_ns <= set->slot[1].last_ns ? &set->slot[0]
                                                                          : &set->slot[1];
    if (now - n->last_ns <= FT_NSEC_PER_SEC)
        return 0;  /* both hold sources that sent within the second */
    __u64 *a = (__u64 *)n->addr;
    if (p->family == 4) {
        a[0] = 0;
        a[1] = 0;
        *(__u32 *)n->addr = p->saddr4;  /* as newcomer_is reads it back */
    } else {
        __u64 *b = (__u64 *)p->saddr6.addr;
        a[0] = b[0];
        a[1] = b[1];
    }
    n->family = p->family;
    n->last_ns = now;
    n->window = now >> 30;
    n->packets = 0;
    return 0;
}

/* Learning: remember the source of a packet that belongs to an established TCP
 * connection or a connected UDP socket (both are in state ESTABLISHED). */
static __always_inline void learn_source(struct xdp_md *ctx, struct ft_pkt *p)
{
    struct bpf_sock_tuple t = {};
    fill_tuple(&t, p);
    if (sock_state(ctx, &t, p->family == 6, p->proto) != BPF_TCP_ESTABLISHED)
        return;
    __u64 now = bpf_ktime_get_coarse_ns();
    if (p->family == 4)
        known_v4.update(&p->saddr4, &now);
    else
        known_v6.update(&p->saddr6, &now);
}

/* 1 when a socket of the node wants the packet (FT_GUARD_SOCKET). */
static __always_inline int guard_socket_spares(struct xdp_md *ctx, struct ft_pkt *p, __u8 guard)
{
    if (p->fragment && !p->l4_ok) {
        /* A later fragment: spared when the first fragment of its datagram was. */
        struct ft_frag_key k = {};
        frag_key(&k, p);
        return frag_spared.lookup(&k) != NULL;
    }
    if (!p->l4_ok)
        return 0;
    int wanted = 0;
    if (p->proto == IPPROTO_TCP)
        wanted = tcp_wanted(ctx, p);
    else if (p->proto == IPPROTO_UDP)
        wanted = udp_wanted(ctx, p, guard & FT_GUARD_CONNECTED);
    else if (p->proto == IPPROTO_ICMP || p->proto == IPPROTO_ICMPV6)
        wanted = icmp_wanted(ctx, p);
    if (wanted && p->fragment) {
        struct ft_frag_key k = {};
        frag_key(&k, p);
        __u64 now = bpf_ktime_get_coarse_ns();
        frag_spared.update(&k, &now);
    }
    return wanted;
}

/* What a guarded rule does with the packet: FT_GUARD_SPARED, FT_GUARD_NEWCOMER, or 0
 * (the rule applies). The socket checks come first, so a newcomer's budget is spent
 * only on packets no socket asked for. */
static __always_inline int guard_spares(struct xdp_md *ctx, struct ft_pkt *p, __u8 guard,
                                        struct ft_config *cfg)
{
    if ((guard & FT_GUARD_KNOWN) && p->l3_ok && source_known(p))
        return FT_GUARD_SPARED;
    if (guard & FT_GUARD_SOCKET) {
        if (guard_socket_spares(ctx, p, guard))
            return FT_GUARD_SPARED;
    }
    if ((guard & FT_GUARD_KNOWN) && p->l3_ok && newcomer_passes(p, cfg))
        return FT_GUARD_NEWCOMER;
    return 0;
}
#else
/* Built without the socket helpers (the kernel lacks one): guards never spare, and the
 * loader refuses guarded rules, so this is never reached with one installed. */
static __always_inline int guard_spares(struct xdp_md *ctx, struct ft_pkt *p, __u8 guard,
                                        struct ft_config *cfg)
{
    return 0;
}
#endif

/* Top sources' front cache (ftshared.h, struct ft_src_slot_v4): the slot of an
 * address is a multiplicative hash of it. */
#define FT_HASH_MUL 0x9E3779B1U

static __always_inline int slot_v6(struct ft_in6 *a)
{
    __u32 *w = (__u32 *)a->addr;
    return (__u32)((w[0] ^ w[1] ^ w[2] ^ w[3]) * FT_HASH_MUL) >> (32 - FT_TOP_CACHE_BITS);
}

static __always_inline int same_in6(struct ft_in6 *a, struct ft_in6 *b)
{
    return *(__u64 *)a->addr == *(__u64 *)b->addr &&
           *(__u64 *)(a->addr + 8) == *(__u64 *)(b->addr + 8);
}

/* Add a slot's counts into the map and empty them. A source the LRU evicted meanwhile
 * is admitted again: it was admitted before, and it is still sending. */
static __always_inline void flush_slot_v4(struct ft_src_slot_v4 *c)
{
    if (!c->packets)
        return;
    struct ft_src_stat *s = top_v4.lookup(&c->addr);
    if (s) {
        s->packets += c->packets;
        s->bytes += c->bytes;
        s->last_seen_ns = c->last_seen_ns;
    } else {
        struct ft_src_stat n = {.packets = c->packets, .bytes = c->bytes,
                                .last_seen_ns = c->last_seen_ns};
        top_v4.update(&c->addr, &n);
    }
    c->packets = 0;
    c->bytes = 0;
}

static __always_inline void flush_slot_v6(struct ft_src_slot_v6 *c)
{
    if (!c->packets)
        return;
    struct ft_src_stat *s = top_v6.lookup(&c->addr);
    if (s) {
        s->packets += c->packets;
        s->bytes += c->bytes;
        s->last_seen_ns = c->last_seen_ns;
    } else {
        struct ft_src_stat n = {.packets = c->packets, .bytes = c->bytes,
                                .last_seen_ns = c->last_seen_ns};
        top_v6.update(&c->addr, &n);
    }
    c->packets = 0;
    c->bytes = 0;
}

/* Parse the packet into *p; returns 1 when a header was cut or invalid. */
static __always_inline int parse(void *data, void *data_end, struct ft_pkt *p)
{
    struct ethhdr *eth = data;
    if ((void *)(eth + 1) > data_end)
        return 1;
    void *cur = eth + 1;
    __be16 h_proto = eth->h_proto;

#pragma unroll
    for (int i = 0; i < FT_MAX_VLAN; i++) {
        if (h_proto != bpf_htons(ETH_P_8021Q) && h_proto != bpf_htons(ETH_P_8021AD))
            break;
        struct ft_vlan_hdr *vh = cur;
        if ((void *)(vh + 1) > data_end)
            return 1;
        h_proto = vh->encap_proto;
        cur = vh + 1;
    }

    void *l4;
    int nonfirst = 0;
    if (h_proto == bpf_htons(ETH_P_IP)) {
        p->family = 4;
        struct iphdr *ip = cur;
        if ((void *)(ip + 1) > data_end)
            return 1;
        if (ip->version != 4 || ip->ihl < 5)
            return 1;
        __u32 hl = ip->ihl * 4;
        if (cur + hl > data_end)
            return 1;
        p->saddr4 = ip->saddr;
        p->daddr4 = ip->daddr;
        p->l3_off = (void *)ip - data;
        p->proto = ip->protocol;
        p->l3_ok = 1;
        p->proto_ok = 1;
        /* MF set or a non-zero offset: a fragment. */
        if (ip->frag_off & bpf_htons(0x3fff)) {
            p->fragment = 1;
            p->frag_id = ip->id;
            nonfirst = (ip->frag_off & bpf_htons(0x1fff)) != 0;
        }
        l4 = cur + hl;
    } else if (h_proto == bpf_htons(ETH_P_IPV6)) {
        p->family = 6;
        struct ipv6hdr *ip6 = cur;
        if ((void *)(ip6 + 1) > data_end)
            return 1;
        __builtin_memcpy(p->saddr6.addr, &ip6->saddr, 16);
        __builtin_memcpy(p->daddr6.addr, &ip6->daddr, 16);
        p->l3_off = (void *)ip6 - data;
        p->l3_ok = 1;
        __u8 nexthdr = ip6->nexthdr;
        l4 = ip6 + 1;
#pragma unroll
        for (int i = 0; i < FT_MAX_V6_EXT; i++) {
            if (nexthdr == IPPROTO_HOPOPTS || nexthdr == IPPROTO_ROUTING ||
                nexthdr == IPPROTO_DSTOPTS) {
                struct ft_v6_opt_hdr *oh = l4;
                if ((void *)(oh + 1) > data_end)
                    return 1;
                nexthdr = oh->nexthdr;
                l4 += ((__u32)oh->hdrlen + 1) * 8;
            } else if (nexthdr == IPPROTO_FRAGMENT) {
                struct ft_v6_frag_hdr *fh = l4;
                if ((void *)(fh + 1) > data_end)
                    return 1;
                nexthdr = fh->nexthdr;
                p->fragment = 1;
                p->frag_id = fh->id;
                if (fh->frag_off & bpf_htons(0xfff8))
                    nonfirst = 1;
                l4 = fh + 1;
            } else {
                break;
            }
        }
        p->proto = nexthdr;
        p->proto_ok = 1;
    } else {
        return 0;  /* other L3: nothing more to read, not malformed */
    }

    if (nonfirst)
        return 0;  /* no L4 header in this fragment */
    p->l4_off = l4 - data;

    if (p->proto == IPPROTO_TCP) {
        struct tcphdr *t = l4;
        if ((void *)(t + 1) > data_end)
            return 1;
        p->sport = t->source;
        p->dport = t->dest;
        p->tcp_flags = ((__u8 *)t)[13];
        p->l4_ok = 1;
    } else if (p->proto == IPPROTO_UDP) {
        struct udphdr *u = l4;
        if ((void *)(u + 1) > data_end)
            return 1;
        p->sport = u->source;
        p->dport = u->dest;
        p->l4_ok = 1;
    } else if (p->proto == IPPROTO_ICMP || p->proto == IPPROTO_ICMPV6) {
        /* ICMP and ICMPv6 headers are 8 bytes (type, code, checksum, 4 more). */
        if (l4 + 8 > data_end)
            return 1;
        p->l4_ok = 1;
    }
    return 0;
}

static __always_inline void emit_sample(struct xdp_md *ctx, __u64 len, __u32 verdict)
{
    if (len == 0)
        return;
    __u32 cap = len > FT_SAMPLE_BYTES ? FT_SAMPLE_BYTES : (__u32)len;
    /* Hide the range from clang so the mask survives and the verifier sees [1, 128]
     * (a zero-length read is rejected). Exact for cap in [1, 128]. */
    asm volatile("" : "+r"(cap));
    cap = ((cap - 1) & (FT_SAMPLE_BYTES - 1)) + 1;
#ifdef FT_PERFBUF
    int zero = 0;
    struct ft_sample *s = sample_scratch.lookup(&zero);
    if (!s)
        return;
    s->timestamp_ns = bpf_ktime_get_ns();
    s->wire_len = len;
    s->cap_len = cap;
    s->verdict = verdict;
    s->pad = 0;
    bpf_xdp_load_bytes(ctx, 0, s->data, cap);
    samples.perf_submit(ctx, s, sizeof(*s));
#else
    struct ft_sample *s = samples.ringbuf_reserve(sizeof(struct ft_sample));
    if (!s)
        return;
    s->timestamp_ns = bpf_ktime_get_ns();
    s->wire_len = len;
    s->cap_len = cap;
    s->verdict = verdict;
    s->pad = 0;
    bpf_xdp_load_bytes(ctx, 0, s->data, cap);
    samples.ringbuf_submit(s, 0);
#endif
}

/* Expiry uses the coarse clock (same CLOCK_MONOTONIC, jiffy resolution, several times
 * cheaper): a rule may outlive its TTL by one tick. Token buckets use the fine clock. */
/* A rule matched: decide. Jumps to `drop` or `done` (allow-listed); falls through when
 * the rule is expired or its token bucket had a token. */
#define APPLY_RULE(_r, _reason)                                              \
    do {                                                                     \
        if (coarse_now(sc) <= (_r)->expires_ns) {                            \
            if (allowlisted(pp, cfg)) {                                       \
                verdict = FT_V_ALLOWLISTED;                                  \
                goto done;                                                   \
            }                                                                \
            if ((_r)->rate_pps == 0) {                                       \
                verdict = (_reason);                                         \
                stat_idx = (_r)->stat_idx;                                   \
                goto drop;                                                   \
            }                                                                \
            if (bucket_empty((_r), bpf_ktime_get_ns())) {                    \
                verdict = FT_V_RATE_LIMITED;                                 \
                stat_idx = (_r)->stat_idx;                                   \
                goto drop;                                                   \
            }                                                                \
        }                                                                    \
    } while (0)

int xdp_main(struct xdp_md *ctx)
{
    void *data = (void *)(long)ctx->data;
    void *data_end = (void *)(long)ctx->data_end;
    __u64 len = data_end - data;
    int zero = 0;

    struct ft_stats *st = stats.lookup(&zero);
    struct ft_config *cfg = config.lookup(&zero);
    if (!st || !cfg)
        return XDP_PASS;

    struct ft_scratch *sc = pkt_scratch.lookup(&zero);
    if (!sc)
        return XDP_PASS;
    struct ft_pkt *pp = &sc->pkt;
    /* Zero only what parse() may leave unwritten and later code reads: the ports and
     * flags (one run of bytes). Addresses, offsets and frag_id are read only where a
     * flag says parse() wrote them. */
    __builtin_memset(&pp->sport, 0,
                     __builtin_offsetof(struct ft_pkt, l3_off) -
                         __builtin_offsetof(struct ft_pkt, sport));
    pp->malformed = parse(data, data_end, pp);

    /* ---- counters ---- */
    st->class_packets[FT_CLS_TOTAL]++;
    st->class_bytes[FT_CLS_TOTAL] += len;
    count_for_wake(ctx, sc, cfg);
    st->sizes[size_index(len)]++;
    __u32 l3 = pp->family == 4 ? FT_CLS_IPV4 : pp->family == 6 ? FT_CLS_IPV6 : FT_CLS_OTHER_L3;
    st->class_packets[l3]++;
    st->class_bytes[l3] += len;
    if (pp->fragment) {
        st->class_packets[FT_CLS_FRAGMENT]++;
        st->class_bytes[FT_CLS_FRAGMENT] += len;
    }
    /* L4 class by protocol number once it is known (even if the L4 header is cut or
     * absent, as in non-first fragments). */
    int l3_read = pp->l3_ok;
    if (pp->proto_ok) {
        __u32 l4c = pp->proto == IPPROTO_TCP ? FT_CLS_TCP
                  : pp->proto == IPPROTO_UDP ? FT_CLS_UDP
                  : (pp->proto == IPPROTO_ICMP || pp->proto == IPPROTO_ICMPV6) ? FT_CLS_ICMP
                  : FT_CLS_OTHER_L4;
        st->class_packets[l4c]++;
        st->class_bytes[l4c] += len;
    }
    if (pp->l4_ok && pp->proto == IPPROTO_TCP)
        st->tcp_flags[tcp_flag_index(pp->tcp_flags)]++;
    if (pp->l4_ok && pp->proto == IPPROTO_UDP) {
        __u32 a = amp_index(bpf_ntohs(pp->sport));
        st->udp_port_packets[a]++;
        st->udp_port_bytes[a] += len;
    }

    __u32 verdict = pp->malformed ? FT_V_MALFORMED : FT_V_PASSED;
    __u32 stat_idx = 0;

    /* ---- drop rules: exact source, source prefix, signature ---- */
    if (pp->family == 4 && l3_read) {
        if (cfg->n_src_v4) {
            struct ft_rule *r = rsrc_v4.lookup(&pp->saddr4);
            if (r)
                APPLY_RULE(r, FT_V_DROP_SRC);
        }
        if (cfg->n_prefix_v4) {
            struct ft_lpm_v4 k = {.prefixlen = 32};
            __builtin_memcpy(k.addr, &pp->saddr4, 4);
            struct ft_rule *r = rpfx_v4.lookup(&k);
            if (r)
                APPLY_RULE(r, FT_V_DROP_PREFIX);
        }
    } else if (pp->family == 6 && l3_read) {
        if (cfg->n_src_v6) {
            struct ft_rule *r = rsrc_v6.lookup(&pp->saddr6);
            if (r)
                APPLY_RULE(r, FT_V_DROP_SRC);
        }
        if (cfg->n_prefix_v6) {
            struct ft_lpm_v6 k = {.prefixlen = 128};
            __builtin_memcpy(k.addr, pp->saddr6.addr, 16);
            struct ft_rule *r = rpfx_v6.lookup(&k);
            if (r)
                APPLY_RULE(r, FT_V_DROP_PREFIX);
        }
    }

    /* Signature rules: the first active rule that matches decides (first match, as in
     * a firewall); the scan only selects, so the verifier sees one application. */
    if (pp->proto_ok && cfg->n_sig) {
        __u32 n_sig = cfg->n_sig;
        struct ft_sig_rule *hit = NULL;
        __u64 now = coarse_now(sc);
        for (int i = 0; i < FT_SIG_RULES_MAX; i++) {
            if (i >= n_sig)
                break;
            int k = i;
            struct ft_sig_rule *s = rsig.lookup(&k);
            if (!s)
                break;
            if (s->rule.expires_ns < now || s->proto != pp->proto)
                continue;
            /* Port and flag matches need the L4 header; proto/dst-only rules also
             * catch non-first fragments. */
            if ((s->match & (FT_SIG_SPORT | FT_SIG_DPORT | FT_SIG_FLAGS)) && !pp->l4_ok)
                continue;
            if ((s->match & FT_SIG_FRAG) && !pp->fragment)
                continue;
            if ((s->match & FT_SIG_SPORT) && s->sport != pp->sport)
                continue;
            if ((s->match & FT_SIG_DPORT) && s->dport != pp->dport)
                continue;
            if ((s->match & FT_SIG_FLAGS) && (pp->tcp_flags & s->tcp_flags_mask) != s->tcp_flags)
                continue;
            if ((s->match & FT_SIG_DST4) &&
                (pp->family != 4 || *(__be32 *)s->dst != pp->daddr4))
                continue;
            if ((s->match & FT_SIG_DST6) &&
                (pp->family != 6 || *(__u64 *)s->dst != *(__u64 *)pp->daddr6.addr ||
                 *(__u64 *)(s->dst + 8) != *(__u64 *)(pp->daddr6.addr + 8)))
                continue;
            hit = s;
            break;
        }
        if (hit) {
            struct ft_rule *r = &hit->rule;
            if (hit->guard) {
                int g = guard_spares(ctx, pp, hit->guard, cfg);
                if (g == FT_GUARD_SPARED) {
                    stat_idx = r->stat_idx;
                    goto spared;
                }
                /* A repeating newcomer within its own budget passes (not spared) while
                 * the rule's repeat bucket has a token; else the shared budget decides. */
                if (g == FT_GUARD_NEWCOMER && !bucket_empty(&hit->repeat, bpf_ktime_get_ns()))
                    goto done;
            }
            APPLY_RULE(r, FT_V_DROP_SIGNATURE);
        }
    }
    goto done;

spared:
    {
        struct ft_rule_stat *rs = rule_stats.lookup(&stat_idx);
        if (rs) {
            rs->spared_packets++;
            rs->spared_bytes += len;
        }
    }
    goto done;

drop:
    {
        struct ft_rule_stat *rs = rule_stats.lookup(&stat_idx);
        if (rs) {
            rs->packets++;
            rs->bytes += len;
        }
    }

done:
    /* From here on the verdict is read back from map memory: one verifier state for all
     * verdicts instead of one per verdict through the rest of the program. */
    pp->verdict = verdict;
    /* ---- top sources: count known sources, insert new ones 1 in N (sample and hold).
     * Packets dropped by a source or prefix rule are counted by that rule instead: the
     * drop path stays short, and a blocked source needs no LRU slot. ---- */
    /* Known sources ride on this count: a tracked source's packet number n is verified
     * when n % learn_one_in == 0 (a power of two), so learning adds no state of its own. */
    __u32 learn_mask = cfg->learn_one_in - 1;
    int learn = 0;
    if (pp->verdict == FT_V_DROP_SRC || pp->verdict == FT_V_DROP_PREFIX)
        goto sampled;
    /* The v4 and v6 branches are the same code on two maps: bcc rewrites map methods only
     * where they are written out, not inside a macro or through a map pointer.
     * A tracked source is counted in its front-cache slot (ftshared.h, struct
     * ft_src_slot_v4); the hash map is asked only on a slot miss and every
     * FT_TOP_CACHE_FLUSH packets. */
    if (pp->family == 4 && l3_read) {
        int slot = (__u32)(pp->saddr4 * FT_HASH_MUL) >> (32 - FT_TOP_CACHE_BITS);
        struct ft_src_slot_v4 *c = top_cache_v4.lookup(&slot);
        if (!c)
            goto sampled;
        if (c->seen && c->addr == pp->saddr4) {
            c->packets++;
            c->bytes += len;
            c->last_seen_ns = coarse_now(sc);
            c->seen++;
            learn = (c->seen & learn_mask) == 0;
            if (c->packets >= FT_TOP_CACHE_FLUSH)
                flush_slot_v4(c);
            goto sampled;
        }
        struct ft_src_stat *s = top_v4.lookup(&pp->saddr4);
        if (s) {
            __u64 n_packets = ++s->packets;
            s->bytes += len;
            __u64 now = coarse_now(sc);
            s->last_seen_ns = now;
            learn = (n_packets & learn_mask) == 0;
            /* A tracked source takes the slot (the latest wins): the occupant's counts
             * go into the map first. */
            flush_slot_v4(c);
            c->addr = pp->saddr4;
            c->last_seen_ns = now;
            c->seen = n_packets;
        } else if (cfg->src_insert_one_in <= 1 || st->src_insert_countdown <= 1 ||
                   st->src_insert_countdown > cfg->src_insert_one_in) {
            st->src_insert_countdown = cfg->src_insert_one_in;
            struct ft_src_stat n = {.packets = 1, .bytes = len,
                                    .last_seen_ns = coarse_now(sc)};
            top_v4.update(&pp->saddr4, &n);
        } else {
            st->src_insert_countdown--;
        }
    } else if (pp->family == 6 && l3_read) {
        int slot = slot_v6(&pp->saddr6);
        struct ft_src_slot_v6 *c = top_cache_v6.lookup(&slot);
        if (!c)
            goto sampled;
        if (c->seen && same_in6(&c->addr, &pp->saddr6)) {
            c->packets++;
            c->bytes += len;
            c->last_seen_ns = coarse_now(sc);
            c->seen++;
            learn = (c->seen & learn_mask) == 0;
            if (c->packets >= FT_TOP_CACHE_FLUSH)
                flush_slot_v6(c);
            goto sampled;
        }
        struct ft_src_stat *s = top_v6.lookup(&pp->saddr6);
        if (s) {
            __u64 n_packets = ++s->packets;
            s->bytes += len;
            __u64 now = coarse_now(sc);
            s->last_seen_ns = now;
            learn = (n_packets & learn_mask) == 0;
            flush_slot_v6(c);
            c->addr = pp->saddr6;
            c->last_seen_ns = now;
            c->seen = n_packets;
        } else if (cfg->src_insert_one_in <= 1 || st->src_insert_countdown <= 1 ||
                   st->src_insert_countdown > cfg->src_insert_one_in) {
            st->src_insert_countdown = cfg->src_insert_one_in;
            struct ft_src_stat n = {.packets = 1, .bytes = len,
                                    .last_seen_ns = coarse_now(sc)};
            top_v6.update(&pp->saddr6, &n);
        } else {
            st->src_insert_countdown--;
        }
    }

sampled:
#ifndef FT_NO_SOCKET_GUARD
    /* ---- known sources: verify 1 passed TCP (non-SYN) / UDP packet in N per source ---- */
    if (learn && cfg->learn_one_in && pp->verdict == FT_V_PASSED && pp->l4_ok &&
        ((pp->proto == IPPROTO_TCP && !(pp->tcp_flags & 0x02)) || pp->proto == IPPROTO_UDP))
        learn_source(ctx, pp);
#endif
    verdict = pp->verdict;
    if (verdict < FT_NUM_VERDICTS) {
        st->verdict_packets[verdict]++;
        st->verdict_bytes[verdict] += len;
    }
    if (cfg->sample_one_in) {
        /* A countdown above N is left from an earlier, sparser rate: restart it. */
        if (st->sample_countdown <= 1 || st->sample_countdown > cfg->sample_one_in) {
            st->sample_countdown = cfg->sample_one_in;
            emit_sample(ctx, len, verdict);
        } else {
            st->sample_countdown--;
        }
    }
    if (verdict >= FT_V_DROP_SRC && verdict <= FT_V_RATE_LIMITED)
        return XDP_DROP;
    return XDP_PASS;
}

#ifndef FT_NO_SOCKET_GUARD
/* ---- TC egress: peers the node sends UDP to become known sources ----
 * "Exchanged UDP both ways": the node answering (or asking) a peer over UDP is what makes
 * the peer known; a UDP service's socket is bound, not connected, so the XDP side's socket
 * lookup never learns its clients. 1 egress datagram in egress_learn_one_in per CPU is
 * looked at (a countdown, no per-packet map write). Paused while a known-sources rule is
 * in force (learn_paused_until_ns), and it never changes or drops a packet. */
BPF_PERCPU_ARRAY(egress_countdown, __u32, 1);

/* 1 when this CPU's countdown says: look at this datagram (1 in N). */
static __always_inline int egress_sampled(__u32 n)
{
    int zero = 0;
    __u32 *countdown = egress_countdown.lookup(&zero);
    if (!countdown)
        return 0;
    /* A countdown above N is left from an earlier, sparser rate: restart it. */
    if (*countdown > 1 && *countdown <= n) {
        (*countdown)--;
        return 0;
    }
    *countdown = n;
    return 1;
}

int tc_egress_learn(struct __sk_buff *skb)
{
    int zero = 0;
    struct ft_config *cfg = config.lookup(&zero);
    if (!cfg || !cfg->egress_learn_one_in)
        return TC_ACT_OK;
    __u32 n = cfg->egress_learn_one_in;
    if (skb->protocol == bpf_htons(ETH_P_IP)) {
        struct iphdr ip;
        if (bpf_skb_load_bytes(skb, ETH_HLEN, &ip, sizeof(ip)) < 0 || ip.protocol != IPPROTO_UDP)
            return TC_ACT_OK;
        if (!egress_sampled(n))
            return TC_ACT_OK;
        __u64 now = bpf_ktime_get_coarse_ns();
        if (now < cfg->learn_paused_until_ns)
            return TC_ACT_OK;
        __u32 daddr = ip.daddr;
        /* A peer known already is refreshed in place: a lookup, not an LRU insert. */
        __u64 *seen = known_v4.lookup(&daddr);
        if (seen)
            *seen = now;
        else
            known_v4.update(&daddr, &now);
    } else if (skb->protocol == bpf_htons(ETH_P_IPV6)) {
        struct ipv6hdr ip6;
        /* extension headers before UDP: not learned */
        if (bpf_skb_load_bytes(skb, ETH_HLEN, &ip6, sizeof(ip6)) < 0 || ip6.nexthdr != IPPROTO_UDP)
            return TC_ACT_OK;
        if (!egress_sampled(n))
            return TC_ACT_OK;
        __u64 now = bpf_ktime_get_coarse_ns();
        if (now < cfg->learn_paused_until_ns)
            return TC_ACT_OK;
        struct ft_in6 daddr;
        __builtin_memcpy(daddr.addr, &ip6.daddr, 16);
        __u64 *seen = known_v6.lookup(&daddr);
        if (seen)
            *seen = now;
        else
            known_v6.update(&daddr, &now);
    }
    return TC_ACT_OK;
}
#endif
