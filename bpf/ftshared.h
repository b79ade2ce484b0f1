/* SPDX-License-Identifier: Apache-2.0 */
/*
 * ftshared.h: everything the XDP program and the Python loader share.
 *
 * The model is xdp-tools' common_kern_user.h: every index constant, struct and map
 * size lives here once. Python never copies a layout: it reads bcc's generated
 * Key/Leaf ctypes (b["map"].Key / .Leaf) and the constants below are mirrored by
 * name in ftagent/datapath.py (CLASSES, TCP_FLAG_CLASSES, AMP_PORTS, SIZE_BOUNDS,
 * VERDICTS), in the same order; tests/bpf/test_layout.py checks the mirror.
 *
 * Byte order: addresses and ports inside map keys/values are in network order
 * (as on the wire), so the program compares without converting. Times are
 * bpf_ktime_get_ns() (CLOCK_MONOTONIC).
 */
#ifndef FTSHARED_H
#define FTSHARED_H

/* ---- packet/byte classes: ftagent.datapath.CLASSES ---- */
#define FT_CLS_TOTAL     0
#define FT_CLS_IPV4      1
#define FT_CLS_IPV6      2
#define FT_CLS_OTHER_L3  3
#define FT_CLS_TCP       4
#define FT_CLS_UDP       5
#define FT_CLS_ICMP      6  /* ICMP and ICMPv6 */
#define FT_CLS_OTHER_L4  7
#define FT_CLS_FRAGMENT  8  /* IPv4 or IPv6 fragments, first and non-first */
#define FT_NUM_CLASSES   9

/* ---- TCP flag classes: ftagent.datapath.TCP_FLAG_CLASSES ----
 * Precedence: rst > syn/synack > fin > ack > other. */
#define FT_TCPF_SYN     0
#define FT_TCPF_SYNACK  1
#define FT_TCPF_ACK     2
#define FT_TCPF_RST     3
#define FT_TCPF_FIN     4
#define FT_TCPF_OTHER   5
#define FT_NUM_TCPF     6

/* ---- UDP source ports (amplification): ftagent.datapath.AMP_PORTS + "other" ---- */
#define FT_AMP_19     0
#define FT_AMP_53     1
#define FT_AMP_123    2
#define FT_AMP_161    3
#define FT_AMP_389    4
#define FT_AMP_1900   5
#define FT_AMP_3702   6
#define FT_AMP_5353   7
#define FT_AMP_11211  8
#define FT_AMP_OTHER  9
#define FT_NUM_AMP    10

/* ---- packet-size histogram (wire length, inclusive bounds): SIZE_BOUNDS ---- */
#define FT_SIZE_LE_64    0
#define FT_SIZE_LE_128   1
#define FT_SIZE_LE_256   2
#define FT_SIZE_LE_512   3
#define FT_SIZE_LE_1024  4
#define FT_SIZE_LE_1500  5
#define FT_SIZE_GT_1500  6
#define FT_NUM_SIZES     7

/* ---- verdicts (exactly one per packet): ftagent.datapath.VERDICTS ----
 * allowlisted: a drop rule matched but the allow-list spared the packet (the
 * allow-list is consulted only when a rule would drop, which keeps the pass path
 * free of LPM lookups). malformed: a header was cut or invalid and no source/prefix
 * rule dropped it; such packets pass. */
#define FT_V_PASSED          0
#define FT_V_DROP_SRC        1
#define FT_V_DROP_PREFIX     2
#define FT_V_DROP_SIGNATURE  3
#define FT_V_RATE_LIMITED    4
#define FT_V_ALLOWLISTED     5
#define FT_V_MALFORMED       6
#define FT_NUM_VERDICTS      7

/* ---- map sizes (the loader may override the ones marked with -D) ---- */
#ifndef FT_TOP_SOURCES_SIZE
#define FT_TOP_SOURCES_SIZE  16384   /* per family; -DFT_TOP_SOURCES_SIZE=N */
#endif
#define FT_TOP_CACHE_BITS    8       /* top sources' front cache: 2^N slots per family per CPU */
#define FT_TOP_CACHE_SLOTS   (1 << FT_TOP_CACHE_BITS)
#define FT_TOP_CACHE_FLUSH   64      /* a cached source's counts go into top_v4/v6 every N */
#define FT_SRC_RULES_MAX     4096    /* exact-source rules per family */
#define FT_PREFIX_RULES_MAX  1024    /* prefix rules per family */
#ifndef FT_SIG_RULES_MAX
#define FT_SIG_RULES_MAX     32      /* signature rules (scanned linearly) */
#endif
#define FT_RULE_STATS_MAX    (2 * FT_SRC_RULES_MAX + 2 * FT_PREFIX_RULES_MAX + FT_SIG_RULES_MAX)
#define FT_ALLOW_MAX         1024    /* allow-list prefixes per family */
#define FT_RINGBUF_PAGES     64      /* sample ring buffer: 64 pages (256 KiB) */
#define FT_PERFBUF_PAGES     8       /* perf buffer pages per CPU (fallback) */
#define FT_WAKE_SLOT_SHIFT   23      /* wake slot: coarse ns >> 23 (2^23 ns, about 8.4 ms) */
#define FT_WAKE_PAGES        1       /* wake ring buffer: one page (a wake is 24 bytes) */
#define FT_SAMPLE_BYTES      128     /* bytes of each sampled packet sent to user space */
#define FT_MAX_VLAN          2       /* 802.1Q / 802.1ad tags parsed */
#define FT_MAX_V6_EXT        4       /* IPv6 extension headers skipped */
#define FT_FRAG_SPARED_MAX   4096    /* datagrams whose later fragments are spared */
#ifndef FT_KNOWN_MAX
#define FT_KNOWN_MAX         65536   /* known sources per family (LRU); -DFT_KNOWN_MAX=N */
#endif
#ifndef FT_NEWCOMERS_BITS
#define FT_NEWCOMERS_BITS    16      /* newcomers table: 2^N sets of 2 slots, both families */
#endif
#define FT_NEWCOMERS_SETS    (1 << FT_NEWCOMERS_BITS)

/* ---- signature-rule match bits (ft_sig_rule.match) ---- */
#define FT_SIG_SPORT  0x01
#define FT_SIG_DPORT  0x02
#define FT_SIG_FLAGS  0x04
#define FT_SIG_DST4   0x08
#define FT_SIG_DST6   0x10
#define FT_SIG_FRAG   0x20  /* IPv4 fragments and IPv6 packets with a fragment header only */

/* ---- signature-rule guards (ft_sig_rule.guard): packets the rule spares ----
 * A guarded rule asks the kernel's socket tables before it drops or rate-limits: a
 * packet that a socket of the node wants passes (and is counted as spared by the rule).
 * The lookups run only for packets such a rule matched: peace time pays nothing.
 * FT_GUARD_SOCKET, TCP: a segment of an existing connection (established, time-wait or
 *   request sock) passes; at a listener only a SYN (the kernel's own SYN cookies answer
 *   it) or the ACK carrying a valid SYN cookie; a segment to a port with no socket
 *   drops. UDP: a datagram that a socket would receive (connected, or bound to its
 *   port) passes. ICMP/ICMPv6: an error (unreachable, fragmentation needed, packet
 *   too big, time exceeded, parameter problem) quoting one of the node's own TCP
 *   connections or UDP sockets passes; echo and the rest do not.
 *   Fragments: a first fragment is judged by its UDP/TCP header; when it is spared, its
 *   (source, IP id) goes into frag_spared and the later fragments of the same datagram
 *   pass too (they carry no ports to judge).
 * FT_GUARD_CONNECTED, UDP: only connected sockets count (answers to the node's own
 *   queries: its DNS and NTP clients), so a reflected flood to a server port drops. */
#define FT_GUARD_SOCKET     0x01
#define FT_GUARD_CONNECTED  0x02
/* FT_GUARD_KNOWN: a source in known_v4/known_v6 passes (any protocol). The program
 * learns sources while it passes traffic: every learn_one_in-th packet of a source in
 * the top-sources map (TCP non-SYN / UDP) is looked up, and a source with an established TCP connection (the handshake
 * completed) or a connected UDP socket (the node asked it, it answered) is remembered.
 * The TC egress program (tc_egress_learn) learns the other half: a peer the node sends
 * UDP to (1 egress UDP datagram in egress_learn_one_in) is remembered, except while
 * learn_paused_until_ns is ahead (user space sets it to the latest expiry of its
 * known-sources rules: the node's answer to a spoofed newcomer that got through must
 * not make that address known).
 * Sources first seen during an attack: the first packet of each takes the rule's shared
 * budget (rate_pps); the source takes a slot of `newcomers`, and its later packets
 * pass up to newcomer_source_pps each per second ("second chance": a real client sends
 * again, a random spoofed address almost never repeats), while the rule's second bucket
 * (ft_sig_rule.repeat, the same rate) has tokens. Past either, the shared budget. So
 * newcomers pass at most 2 x rate_pps in all. Neither counts as spared: only known
 * sources (and what sockets want) are. */
#define FT_GUARD_KNOWN      0x04

/* ---- map layouts ---- */

/* Per-CPU, one element: every packet counter. */
struct ft_stats {
    __u64 class_packets[FT_NUM_CLASSES];
    __u64 class_bytes[FT_NUM_CLASSES];
    __u64 tcp_flags[FT_NUM_TCPF];
    __u64 udp_port_packets[FT_NUM_AMP];
    __u64 udp_port_bytes[FT_NUM_AMP];
    __u64 sizes[FT_NUM_SIZES];
    __u64 verdict_packets[FT_NUM_VERDICTS];
    __u64 verdict_bytes[FT_NUM_VERDICTS];
    __u64 sample_countdown;      /* 1-in-N sampling, per CPU */
    __u64 src_insert_countdown;  /* sample-and-hold insertion into top sources */
};

/* One element, written by user space. The n_* fields say whether a rule/allow map
 * may hold entries: zero lets the program skip the lookup (a stale non-zero value
 * only costs a lookup, so user space keeps them >= the real count). */
struct ft_config {
    __u32 sample_one_in;        /* 0: sampling off */
    __u32 src_insert_one_in;    /* top sources: insert a new source 1 in N (sample and hold); 0/1: every packet */
    __u32 n_src_v4;
    __u32 n_src_v6;
    __u32 n_prefix_v4;
    __u32 n_prefix_v6;
    __u32 n_sig;                /* signature slots in use: 0..n_sig-1 are scanned */
    __u32 n_allow_v4;
    __u32 n_allow_v6;
    __u32 learn_one_in;         /* known sources: 0 off; else (a power of two) look up every
                                 * Nth packet of each tracked source (TCP non-SYN / UDP) */
    __u32 egress_learn_one_in;  /* known sources from egress UDP: 0 off; else 1 datagram in N
                                 * (per-CPU countdown) marks its destination known */
    __u32 newcomer_source_pps;  /* second chance: a repeating newcomer passes up to this many
                                 * packets per second; 0: newcomers share rate_pps only */
    __u32 wake_slot_packets;    /* wake-up: one event (ring `wakes`) when a CPU counts this many
                                 * packets in one wake slot; 0: off (see struct ft_wake) */
    __u64 learn_paused_until_ns; /* no egress learning before this (coarse ns) */
};

/* A source first seen under a known-sources rule: one slot of `newcomers`. */
struct ft_newcomer {
    __u8 addr[16];          /* v4: first 4 bytes */
    __u64 last_ns;          /* its last packet (coarse ns); 0: free */
    __u32 window;           /* its budget's window: coarse ns >> 30 (about a second) */
    __u16 packets;          /* packets passed in that window */
    __u8 family;            /* 4 or 6 */
    __u8 pad;
};

/* Two slots, 64 bytes: a cache line's size. */
struct ft_newcomer_set {
    struct ft_newcomer slot[2];
};

struct ft_in6 {
    __u8 addr[16];
};

/* LPM keys: prefixlen first, as BPF_MAP_TYPE_LPM_TRIE requires. */
struct ft_lpm_v4 {
    __u32 prefixlen;
    __u8 addr[4];
};

struct ft_lpm_v6 {
    __u32 prefixlen;
    __u8 addr[16];
};

/* Top sources (LRU per-CPU hash; each CPU updates its own copy, no atomics). */
struct ft_src_stat {
    __u64 packets;
    __u64 bytes;
    __u64 last_seen_ns;  /* bpf_ktime_get_coarse_ns(): same clock, jiffy resolution */
};

/* Top sources' front cache (per-CPU arrays top_cache_v4/v6, slot = a hash of the
 * address): a source already in top_v4/top_v6 is counted in its slot, without the hash
 * map's lookup (a third of the pass path's cost), and the slot's packets and bytes are
 * added into the map every FT_TOP_CACHE_FLUSH packets and when another tracked source
 * takes the slot. Readers add the packets/bytes of occupied slots (seen != 0) to the
 * map's figures for the same address, and take the later last_seen_ns. */
struct ft_src_slot_v4 {
    __u32 addr;          /* network order */
    __u32 pad;
    __u64 packets;       /* not yet added into top_v4 */
    __u64 bytes;
    __u64 last_seen_ns;
    __u64 seen;          /* the source's packet number on this CPU (0: empty slot) */
};

struct ft_src_slot_v6 {
    struct ft_in6 addr;
    __u64 packets;
    __u64 bytes;
    __u64 last_seen_ns;
    __u64 seen;
};

/* A source or prefix rule. rate_pps == 0: drop every match; otherwise a token bucket
 * (capacity one second of tokens, tokens in units of 1e-9 packet) passes rate_pps. */
struct ft_rule {
    __u64 expires_ns;       /* the program ignores the rule once now > expires_ns */
    __u64 tokens;           /* token bucket state (shared across CPUs; benign races) */
    __u64 last_refill_ns;
    __u32 rate_pps;
    __u32 stat_idx;         /* index into rule_stats */
};

/* A signature rule: proto + optional ports, TCP flags and destination. */
struct ft_sig_rule {
    struct ft_rule rule;    /* expires_ns == 0: free slot */
    __u8 proto;             /* IPPROTO_* (6, 17, 1, 58) */
    __u8 match;             /* FT_SIG_* bits */
    __u8 tcp_flags;         /* match when (flags & tcp_flags_mask) == tcp_flags */
    __u8 tcp_flags_mask;
    __u16 sport;            /* network order */
    __u16 dport;            /* network order */
    __u8 dst[16];           /* v4: first 4 bytes */
    __u8 guard;             /* FT_GUARD_* bits; 0: drop/rate-limit every match */
    __u8 pad[7];
    /* FT_GUARD_KNOWN: the budget that repeating newcomers (each within its own
     * newcomer_source_pps) share; only its token bucket and rate_pps are used, and user
     * space sets rate_pps to the rule's own. Bounds what a small pool of spoofed
     * addresses that repeat can pass, whatever the pool's size. */
    struct ft_rule repeat;
};

/* A fragmented datagram: the key of frag_spared (value: coarse ns when spared). */
struct ft_frag_key {
    __u8 saddr[16];         /* v4: first 4 bytes */
    __u32 id;               /* IPv4 identification (network order, 16 bits) or IPv6 id */
    __u8 family;            /* 4 or 6 */
    __u8 pad[3];
};

/* Per-CPU counters of one rule. */
struct ft_rule_stat {
    __u64 packets;          /* dropped (or rate-limited) by the rule */
    __u64 bytes;
    __u64 spared_packets;   /* matched, but passed because a socket of the node wanted them */
    __u64 spared_bytes;
};

/* One sampled packet (ring buffer or perf buffer record). */
struct ft_sample {
    __u64 timestamp_ns;
    __u32 wire_len;
    __u16 cap_len;
    __u8 verdict;
    __u8 pad;
    __u8 data[FT_SAMPLE_BYTES];
};

/* A wake-up (ring buffer `wakes`, or a perf buffer where samples use one): a CPU counted
 * ft_config.wake_slot_packets packets in the current wake slot (coarse ns >> FT_WAKE_SLOT_SHIFT).
 * Sent once per slot per CPU, at the packet that reaches the count, so the agent runs a
 * window at once instead of at its next poll. The agent derives the count from its
 * thresholds and turns it off (0) while an attack is confirmed. */
struct ft_wake {
    __u64 slot_ns;          /* start of the slot (coarse ns, a multiple of 2^FT_WAKE_SLOT_SHIFT) */
    __u64 at_ns;            /* coarse ns when the count was reached */
    __u32 cpu;
    __u32 packets;          /* the count reached (wake_slot_packets then) */
};

#endif /* FTSHARED_H */
