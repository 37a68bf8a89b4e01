/* parse.h: Ethernet (up to two VLAN tags), IPv4 (with options), IPv6 (with
 * extension headers), TCP. Fills struct packet; never writes the packet. */
#ifndef DSRLB_PARSE_H
#define DSRLB_PARSE_H

#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <linux/tcp.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>
#include "consts.h"
#include "structs.h"

/* Results of parse_packet. */
enum parse_result {
	PARSE_NOT_OURS = 0, /* not TCP/ICMP over IP, or truncated: pass untouched */
	PARSE_TCP,          /* pkt->flow is the packet's own 5-tuple */
	PARSE_ICMP_PTB,     /* pkt->flow is the inner (reversed) 5-tuple */
	PARSE_FRAGMENT,     /* non-first fragment: only flow.dst and family are set */
};

#define IP_FRAG_OFFSET_MASK 0x1fff
#define IP6_FRAG_OFFSET_MASK 0xfff8
#define TCP_FLAGS_OFFSET 13

struct cursor {
	void *pos;
	void *end;
};

struct vlan_tag {
	__be16 tci;
	__be16 proto;
};

struct ipv6_ext {
	__u8 nexthdr;
	__u8 len; /* in 8-octet units, not counting the first 8 */
};

struct ipv6_frag_hdr {
	__u8 nexthdr;
	__u8 reserved;
	__be16 frag_off;
	__be32 id;
};

/* parse_eth steps over the Ethernet header and up to MAX_VLAN_TAGS tags and
 * returns the EtherType of the payload, or 0 when truncated. */
static __always_inline __u16 parse_eth(struct cursor *c)
{
	struct ethhdr *eth = c->pos;
	if ((void *)(eth + 1) > c->end)
		return 0;
	c->pos = eth + 1;
	__be16 proto = eth->h_proto;

#pragma unroll
	for (int i = 0; i < MAX_VLAN_TAGS; i++) {
		if (proto != bpf_htons(ETH_P_8021Q) && proto != bpf_htons(ETH_P_8021AD))
			break;
		struct vlan_tag *tag = c->pos;
		if ((void *)(tag + 1) > c->end)
			return 0;
		proto = tag->proto;
		c->pos = tag + 1;
	}
	return bpf_ntohs(proto);
}

/* parse_ipv4 steps over an IPv4 header with its options, copying the
 * addresses into flow (src, dst order as on the wire). It returns the L4
 * protocol, 0 when malformed, or -1 for a non-first fragment. */
static __always_inline int parse_ipv4(struct cursor *c, struct flow_key *flow)
{
	struct iphdr *ip = c->pos;
	if ((void *)(ip + 1) > c->end)
		return 0;
	__u32 ihl = ip->ihl * 4;
	if (ip->version != 4 || ihl < sizeof(*ip))
		return 0;
	if (c->pos + ihl > c->end)
		return 0;
	c->pos += ihl;
	flow->family = FAMILY_V4;
	__builtin_memcpy(flow->src, &ip->saddr, 4);
	__builtin_memcpy(flow->dst, &ip->daddr, 4);
	if (bpf_ntohs(ip->frag_off) & IP_FRAG_OFFSET_MASK)
		return -1;
	return ip->protocol;
}

/* parse_ipv6 is parse_ipv4 for IPv6: it walks hop-by-hop, routing,
 * destination-options and fragment headers. */
static __always_inline int parse_ipv6(struct cursor *c, struct flow_key *flow)
{
	struct ipv6hdr *ip6 = c->pos;
	if ((void *)(ip6 + 1) > c->end)
		return 0;
	if (ip6->version != 6)
		return 0;
	c->pos = ip6 + 1;
	flow->family = FAMILY_V6;
	__builtin_memcpy(flow->src, &ip6->saddr, 16);
	__builtin_memcpy(flow->dst, &ip6->daddr, 16);
	__u8 next = ip6->nexthdr;

#pragma unroll
	for (int i = 0; i < MAX_IPV6_EXT_HDRS; i++) {
		if (next == IPPROTO_FRAGMENT) {
			struct ipv6_frag_hdr *f = c->pos;
			if ((void *)(f + 1) > c->end)
				return 0;
			if (bpf_ntohs(f->frag_off) & IP6_FRAG_OFFSET_MASK)
				return -1;
			next = f->nexthdr;
			c->pos = f + 1;
		} else if (next == IPPROTO_HOPOPTS || next == IPPROTO_ROUTING || next == IPPROTO_DSTOPTS) {
			struct ipv6_ext *e = c->pos;
			if ((void *)(e + 1) > c->end)
				return 0;
			next = e->nexthdr;
			c->pos += (e->len + 1) * 8;
		} else {
			break;
		}
	}
	return next;
}

/* parse_ports reads the source and destination ports of a TCP header (or
 * the first 8 bytes of one quoted in an ICMP error) and its flags when whole. */
static __always_inline int parse_tcp(struct cursor *c, struct flow_key *flow, __u8 *flags, int need_full)
{
	struct tcphdr *tcp = c->pos;
	if (need_full) {
		if ((void *)(tcp + 1) > c->end || tcp->doff < 5)
			return -1;
		*flags = ((__u8 *)tcp)[TCP_FLAGS_OFFSET];
	} else if ((void *)tcp + 8 > c->end) {
		return -1;
	}
	flow->sport = tcp->source;
	flow->dport = tcp->dest;
	flow->proto = IPPROTO_TCP;
	return 0;
}

#endif
