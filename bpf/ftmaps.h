/* SPDX-License-Identifier: Apache-2.0 */
/*
 * ftmaps.h: the maps the XDP program (bpf/ftxdp.c) shares with user space. The
 * compiling process (ftagent.bpf.compile) pins each one under the interface's pin
 * directory, with its key/value layout from bcc's generated types; the agent and
 * `ftagent rules|block|unblock` open them there by path.
 */
#ifndef FTMAPS_H
#define FTMAPS_H

#include "ftshared.h"

#define FT_TABLE(_type, _key, _leaf, _name, _size, _flags) \
    BPF_F_TABLE(_type, _key, _leaf, _name, _size, _flags)

FT_TABLE("percpu_array", int, struct ft_stats, stats, 1, 0);
FT_TABLE("array", int, struct ft_config, config, 1, 0);
FT_TABLE("lru_percpu_hash", __u32, struct ft_src_stat, top_v4, FT_TOP_SOURCES_SIZE, 0);
FT_TABLE("lru_percpu_hash", struct ft_in6, struct ft_src_stat, top_v6, FT_TOP_SOURCES_SIZE, 0);
FT_TABLE("percpu_array", int, struct ft_src_slot_v4, top_cache_v4, FT_TOP_CACHE_SLOTS, 0);
FT_TABLE("percpu_array", int, struct ft_src_slot_v6, top_cache_v6, FT_TOP_CACHE_SLOTS, 0);
FT_TABLE("lpm_trie", struct ft_lpm_v4, __u32, allow_v4, FT_ALLOW_MAX, BPF_F_NO_PREALLOC);
FT_TABLE("lpm_trie", struct ft_lpm_v6, __u32, allow_v6, FT_ALLOW_MAX, BPF_F_NO_PREALLOC);
FT_TABLE("hash", __u32, struct ft_rule, rsrc_v4, FT_SRC_RULES_MAX, 0);
FT_TABLE("hash", struct ft_in6, struct ft_rule, rsrc_v6, FT_SRC_RULES_MAX, 0);
FT_TABLE("lpm_trie", struct ft_lpm_v4, struct ft_rule, rpfx_v4, FT_PREFIX_RULES_MAX, BPF_F_NO_PREALLOC);
FT_TABLE("lpm_trie", struct ft_lpm_v6, struct ft_rule, rpfx_v6, FT_PREFIX_RULES_MAX, BPF_F_NO_PREALLOC);
FT_TABLE("array", int, struct ft_sig_rule, rsig, FT_SIG_RULES_MAX, 0);
FT_TABLE("percpu_array", int, struct ft_rule_stat, rule_stats, FT_RULE_STATS_MAX, 0);
FT_TABLE("lru_hash", struct ft_frag_key, __u64, frag_spared, FT_FRAG_SPARED_MAX, 0);
/* known sources: value is the coarse ns when last verified (or added by user space) */
FT_TABLE("lru_hash", __u32, __u64, known_v4, FT_KNOWN_MAX, 0);
FT_TABLE("lru_hash", struct ft_in6, __u64, known_v6, FT_KNOWN_MAX, 0);

#endif /* FTMAPS_H */
