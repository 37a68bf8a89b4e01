// SPDX-License-Identifier: GPL-2.0
/* bounce.c: the benchmark baseline, a bare MAC swap and XDP_TX: the least
 * any L2 forwarder can do. dsrlb's cost is reported as a ratio to it. */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <bpf/bpf_helpers.h>

SEC("xdp")
int bounce(struct xdp_md *ctx)
{
	struct ethhdr *eth = (void *)(long)ctx->data;
	unsigned char tmp[ETH_ALEN];

	if ((void *)(eth + 1) > (void *)(long)ctx->data_end)
		return XDP_PASS;
	__builtin_memcpy(tmp, eth->h_dest, ETH_ALEN);
	__builtin_memcpy(eth->h_dest, eth->h_source, ETH_ALEN);
	__builtin_memcpy(eth->h_source, tmp, ETH_ALEN);
	return XDP_TX;
}

/* sink: XDP_PASS, for the receiving peer of a veth (native XDP_TX on veth
 * needs a program on the peer) and for live-frame benchmarks. */
SEC("xdp")
int sink(struct xdp_md *ctx)
{
	return XDP_PASS;
}

char LICENSE[] SEC("license") = "GPL";
