/* icmp.h: ICMPv4 "fragmentation needed" and ICMPv6 "packet too big" sent to
 * a VIP quote the backend's packet (VIP -> client). Recover that flow,
 * reversed to the client's direction, so the error reaches the backend that
 * owns it and path-MTU discovery works through DSR. */
#ifndef DSRLB_ICMP_H
#define DSRLB_ICMP_H

#include "parse.h"

/* Own definitions: <linux/icmp.h> pulls in libc headers that do not build
 * for the BPF target. */
#define ICMP_DEST_UNREACH 3
#define ICMP_FRAG_NEEDED 4
#define ICMPV6_PKT_TOOBIG 2

/* The 8 bytes that start ICMPv4 and ICMPv6 messages. */
struct icmp_hdr {
	__u8 type;
	__u8 code;
	__be16 checksum;
	__be32 rest; /* unused or next-hop MTU */
};

/* reverse_flow turns the quoted VIP -> client tuple into client -> VIP.
 * The error must be addressed to the quoted packet's source (the VIP): the
 * outer destination, already in out->dst, must equal it, else the message
 * is not ours (a forged error quoting a VIP flow, sent elsewhere). */
static __always_inline int reverse_flow(struct flow_key *inner, struct flow_key *out)
{
	if (__builtin_memcmp(out->dst, inner->src, 16))
		return PARSE_NOT_OURS;
	__builtin_memcpy(out->src, inner->dst, 16);
	__builtin_memcpy(out->dst, inner->src, 16);
	out->sport = inner->dport;
	out->dport = inner->sport;
	out->proto = inner->proto;
	out->family = inner->family;
	return PARSE_ICMP_PTB;
}

/* parse_icmp4_ptb parses an ICMPv4 frag-needed carrying a TCP packet. */
static __always_inline int parse_icmp4_ptb(struct cursor *c, struct flow_key *flow)
{
	struct icmp_hdr *icmp = c->pos;
	if ((void *)(icmp + 1) > c->end)
		return PARSE_NOT_OURS;
	if (icmp->type != ICMP_DEST_UNREACH || icmp->code != ICMP_FRAG_NEEDED)
		return PARSE_NOT_OURS;
	c->pos = icmp + 1;
	struct flow_key inner = {};
	if (parse_ipv4(c, &inner) != IPPROTO_TCP)
		return PARSE_NOT_OURS;
	if (parse_tcp(c, &inner, 0, 0))
		return PARSE_NOT_OURS;
	return reverse_flow(&inner, flow);
}

/* parse_icmp6_ptb parses an ICMPv6 packet-too-big carrying a TCP packet. */
static __always_inline int parse_icmp6_ptb(struct cursor *c, struct flow_key *flow)
{
	struct icmp_hdr *icmp = c->pos;
	if ((void *)(icmp + 1) > c->end)
		return PARSE_NOT_OURS;
	if (icmp->type != ICMPV6_PKT_TOOBIG)
		return PARSE_NOT_OURS;
	c->pos = icmp + 1;
	struct ipv6hdr *ip6 = c->pos;
	if ((void *)(ip6 + 1) > c->end)
		return PARSE_NOT_OURS;
	if (ip6->version != 6 || ip6->nexthdr != IPPROTO_TCP)
		return PARSE_NOT_OURS;
	struct flow_key inner = {.family = FAMILY_V6};
	__builtin_memcpy(inner.src, &ip6->saddr, 16);
	__builtin_memcpy(inner.dst, &ip6->daddr, 16);
	c->pos = ip6 + 1;
	if (parse_tcp(c, &inner, 0, 0))
		return PARSE_NOT_OURS;
	return reverse_flow(&inner, flow);
}

#endif
