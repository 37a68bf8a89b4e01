/* structs.h: map keys and values. internal/maps reads them through the
 * bpf2go-generated Go types; the layout is part of the pinned-map contract. */
#ifndef DSRLB_STRUCTS_H
#define DSRLB_STRUCTS_H

#include <linux/types.h>

/* IPv4 keys are compact (hashing a key costs per byte on every lookup);
 * IPv6 keys hold 16-byte addresses. */
struct vip_key4 {
	__be32 addr;
	__u16 port; /* network byte order; 0 with proto 0: the address alone */
	__u8 proto;
	__u8 pad;
};

struct flow_key4 {
	__be32 src;
	__be32 dst;
	__u16 sport; /* network byte order */
	__u16 dport;
};

/* Addresses are 16 bytes; IPv4 uses the first 4 and zeroes the rest. */
struct vip_key {
	__u8 addr[16];
	__u16 port; /* network byte order */
	__u8 proto; /* IPPROTO_TCP */
	__u8 family;
};

struct vip_meta {
	__u32 id;    /* index into rings and vip_stats */
	__u32 flags; /* VIP_F_* */
};

/* One (VIP, backend) pair: a backend is up for one VIP and draining for another. */
struct real_entry {
	__u8 mac[6];
	__u8 state; /* REAL_* */
	__u8 pad;
	__u32 vip_id;
};

/* The parsed 5-tuple of either family. It is also the input of the flow
 * hash (IPv4 zero-padded), and the IPv6 flow table's key. */
struct flow_key {
	__u8 src[16];
	__u8 dst[16];
	__u16 sport; /* network byte order */
	__u16 dport;
	__u8 proto;
	__u8 family;
	__u8 pad[2];
};

struct counters {
	__u64 packets;
	__u64 bytes;
	__u64 new_flows;
	__u64 last_seen; /* bpf_jiffies64() of the last packet */
};

struct lb_settings {
	__u32 hash_seed;
	__u32 ring_size;
	__u32 flood_limit; /* flow-table inserts per CPU per second; 0: no guard */
	__u8 if_mac[6];
	__u8 pad[2];
};

/* A jiffies / CLOCK_MONOTONIC pair taken by clock_sample. */
struct clock_pair {
	__u64 mono_ns;
	__u64 jiffies;
};

struct flood_window {
	__u64 start_ns;
	__u64 inserts;
};

/* What parsing found out about a packet; filled by parse.h. */
struct packet {
	struct flow_key flow;
	__u8 tcp_flags;
	__u8 is_syn;      /* SYN without ACK: a new connection */
	__u8 is_icmp_ptb; /* ICMP frag-needed / ICMPv6 packet-too-big; flow is the inner one, reversed */
	__u8 pad;
	__u32 pkt_len;
};

#endif
