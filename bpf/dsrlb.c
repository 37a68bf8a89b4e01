// SPDX-License-Identifier: GPL-2.0
/* dsrlb.c: the XDP entry of dsrlb, a one-arm L2 Direct Server Return load
 * balancer. A packet for a VIP:port gets its destination MAC rewritten to a
 * backend's and goes back out of the same interface (XDP_TX); everything
 * else goes on to the kernel untouched (XDP_PASS). See DESIGN section 2. */
#include "consts.h"
#include "structs.h"
#include "maps.h"
#include "parse.h"
#include "hash.h"
#include "icmp.h"

#define TCP_FIN 0x01
#define TCP_SYN 0x02
#define TCP_RST 0x04
#define TCP_ACK 0x10

static __always_inline void count(__u32 counter)
{
	__u64 *v = bpf_map_lookup_elem(&global_stats, &counter);
	if (v)
		*v += 1;
}

static __always_inline void account(void *map, __u32 id, struct packet *pkt, __u64 now)
{
	struct counters *c = bpf_map_lookup_elem(map, &id);
	if (!c)
		return;
	c->packets++;
	c->bytes += pkt->pkt_len;
	c->new_flows += pkt->is_syn;
	c->last_seen = now;
}

/* parse_packet fills pkt and says what kind of packet it is. */
static __always_inline int parse_packet(struct xdp_md *ctx, struct packet *pkt)
{
	struct cursor c = {.pos = (void *)(long)ctx->data, .end = (void *)(long)ctx->data_end};
	int l4;

	pkt->pkt_len = c.end - c.pos;
	switch (parse_eth(&c)) {
	case ETH_P_IP:
		l4 = parse_ipv4(&c, &pkt->flow);
		if (l4 == IPPROTO_ICMP)
			return parse_icmp4_ptb(&c, &pkt->flow);
		break;
	case ETH_P_IPV6:
		l4 = parse_ipv6(&c, &pkt->flow);
		if (l4 == IPPROTO_ICMPV6)
			return parse_icmp6_ptb(&c, &pkt->flow);
		break;
	default:
		return PARSE_NOT_OURS;
	}
	if (l4 < 0)
		return PARSE_FRAGMENT;
	if (l4 != IPPROTO_TCP || parse_tcp(&c, &pkt->flow, &pkt->tcp_flags, 1))
		return PARSE_NOT_OURS;
	pkt->is_syn = (pkt->tcp_flags & (TCP_SYN | TCP_ACK)) == TCP_SYN;
	return PARSE_TCP;
}

/* lookup_vip finds the VIP for the flow's destination address and port;
 * port 0 finds the VIP's address alone (used for fragments). */
static __always_inline struct vip_meta *lookup_vip(struct flow_key *flow, __u16 port, __u8 proto)
{
	if (flow->family == FAMILY_V4) {
		struct vip_key4 key = {.port = port, .proto = proto};
		__builtin_memcpy(&key.addr, flow->dst, 4);
		return bpf_map_lookup_elem(&vips4, &key);
	}
	struct vip_key key = {.port = port, .proto = proto, .family = flow->family};
	__builtin_memcpy(key.addr, flow->dst, 16);
	return bpf_map_lookup_elem(&vips6, &key);
}

/* flow_key4_of is the compact IPv4 flow-table key of a flow. */
static __always_inline struct flow_key4 flow_key4_of(struct flow_key *flow)
{
	struct flow_key4 k = {.sport = flow->sport, .dport = flow->dport};
	__builtin_memcpy(&k.src, flow->src, 4);
	__builtin_memcpy(&k.dst, flow->dst, 4);
	return k;
}

static __always_inline __u32 *lookup_flow(struct flow_key *flow)
{
	if (flow->family == FAMILY_V4) {
		struct flow_key4 k = flow_key4_of(flow);
		return bpf_map_lookup_elem(&flows4, &k);
	}
	return bpf_map_lookup_elem(&flows6, flow);
}

static __always_inline void record_flow(struct flow_key *flow, __u32 *id)
{
	if (flow->family == FAMILY_V4) {
		struct flow_key4 k = flow_key4_of(flow);
		bpf_map_update_elem(&flows4, &k, id, BPF_ANY);
		return;
	}
	bpf_map_update_elem(&flows6, flow, id, BPF_ANY);
}

/* may_record applies the per-CPU new-flow rate guard: past flood_limit
 * inserts in a second, flows are forwarded by the ring alone so a SYN flood
 * cannot evict established flows from the LRU. */
static __always_inline int may_record(struct lb_settings *s)
{
	__u32 zero = 0;
	struct flood_window *w = bpf_map_lookup_elem(&flood, &zero);
	if (!w || !s->flood_limit)
		return 1;
	__u64 now = bpf_ktime_get_coarse_ns(); /* only on the insert path */
	if (now - w->start_ns >= NSEC_PER_SEC) {
		w->start_ns = now;
		w->inserts = 0;
	}
	if (w->inserts >= s->flood_limit) {
		count(G_FLOOD_GUARD);
		return 0;
	}
	w->inserts++;
	return 1;
}

/* pick_real returns the (VIP, backend) entry for the packet, recording new
 * flows, or NULL when the VIP has no usable backend. */
static __always_inline struct real_entry *pick_real(struct packet *pkt, struct vip_meta *vip,
						    struct lb_settings *s, __u32 *id)
{
	struct real_entry *real;

	if (!pkt->is_syn) {
		__u32 *flow_id = lookup_flow(&pkt->flow);
		if (flow_id) {
			*id = *flow_id;
			real = bpf_map_lookup_elem(&reals, id);
			if (real && real->vip_id == vip->id &&
			    (real->state == REAL_UP || real->state == REAL_DRAINING))
				return real;
			count(G_REPICK);
		} else if (!pkt->is_icmp_ptb) {
			count(G_NONSYN_MISS);
		}
	}

	void *ring = bpf_map_lookup_elem(&rings, &vip->id);
	if (!ring || !s->ring_size)
		return NULL;
	__u32 slot = flow_hash(&pkt->flow, vip->flags & VIP_F_SOURCE_IP, s->hash_seed) % s->ring_size;
	__u32 *ring_id = bpf_map_lookup_elem(ring, &slot);
	if (!ring_id)
		return NULL;
	*id = *ring_id;
	real = bpf_map_lookup_elem(&reals, id);
	if (!real || real->state != REAL_UP)
		return NULL;
	if (!(pkt->tcp_flags & TCP_RST) && !pkt->is_icmp_ptb && may_record(s))
		record_flow(&pkt->flow, id);
	return real;
}

/* rewrite_macs is the only change dsrlb makes to a packet. */
static __always_inline int rewrite_macs(struct xdp_md *ctx, struct real_entry *real, struct lb_settings *s)
{
	struct ethhdr *eth = (void *)(long)ctx->data;
	if ((void *)(eth + 1) > (void *)(long)ctx->data_end)
		return XDP_PASS;
	__builtin_memcpy(eth->h_dest, real->mac, ETH_ALEN);
	__builtin_memcpy(eth->h_source, s->if_mac, ETH_ALEN);
	return XDP_TX;
}

SEC("xdp")
int dsrlb_xdp(struct xdp_md *ctx)
{
	struct packet pkt = {};
	__u32 zero = 0, real_id = 0;
	struct vip_meta *vip;

	int kind = parse_packet(ctx, &pkt);
	if (kind == PARSE_NOT_OURS)
		goto pass;
	if (kind == PARSE_FRAGMENT) {
		if (lookup_vip(&pkt.flow, 0, 0))
			count(G_FRAGMENTS);
		return XDP_PASS;
	}
	pkt.is_icmp_ptb = kind == PARSE_ICMP_PTB;
	vip = lookup_vip(&pkt.flow, pkt.flow.dport, IPPROTO_TCP);
	if (!vip)
		goto pass;

	struct lb_settings *s = bpf_map_lookup_elem(&settings, &zero);
	if (!s)
		goto pass;
	/* jiffies: free to read, and a few ms of resolution is all "last
	 * packet 3 s ago" needs (internal/maps converts them to wall time). */
	__u64 now = bpf_jiffies64();
	struct real_entry *real = pick_real(&pkt, vip, s, &real_id);
	if (!real) {
		count(G_NO_BACKEND);
		return XDP_PASS;
	}

	account(&vip_stats, vip->id, &pkt, now);
	account(&real_stats, real_id, &pkt, now);
	if (pkt.is_icmp_ptb)
		count(G_ICMP_FWD);
	return rewrite_macs(ctx, real, s);

pass:
	count(G_PASS);
	return XDP_PASS;
}

/* clock_sample records jiffies and CLOCK_MONOTONIC side by side, so the
 * control plane can turn last_seen jiffies into wall-clock time. It is run
 * with BPF_PROG_TEST_RUN only, never attached. */
SEC("xdp")
int clock_sample(struct xdp_md *ctx)
{
	__u32 zero = 0;
	struct clock_pair *c = bpf_map_lookup_elem(&clock, &zero);
	if (c) {
		c->mono_ns = bpf_ktime_get_ns();
		c->jiffies = bpf_jiffies64();
	}
	return XDP_PASS;
}

char LICENSE[] SEC("license") = "GPL";
