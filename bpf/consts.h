/* consts.h: limits and enumerations shared with the Go control plane.
 * internal/maps mirrors every value here; a change is a map layout change. */
#ifndef DSRLB_CONSTS_H
#define DSRLB_CONSTS_H

#define MAX_VIPS 1024       /* entries of vips / vip_stats / rings (outer) */
#define MAX_REALS 8192      /* (VIP, backend) pairs: reals / real_stats */
#define MAX_VLAN_TAGS 2     /* 802.1Q and 802.1ad (QinQ) */
#define MAX_IPV6_EXT_HDRS 4 /* extension headers walked before giving up */

/* Address families in keys (own values, not AF_*). */
#define FAMILY_V4 4
#define FAMILY_V6 6

/* real_entry.state: the per-(VIP, backend) state of DESIGN section 4. */
#define REAL_UNUSED 0
#define REAL_UP 1
#define REAL_DRAINING 2
#define REAL_DOWN 3

/* vip_meta.flags */
#define VIP_F_SOURCE_IP 1 /* persistence = "source-ip": hash the source address only */

/* Indexes of global_stats counters. */
enum global_counter {
	G_PASS = 0,       /* not for a VIP: handed to the stack */
	G_NO_BACKEND,     /* VIP with an empty ring: handed to the stack */
	G_FRAGMENTS,      /* non-first fragments to a VIP: passed */
	G_ICMP_FWD,       /* ICMP frag-needed / ICMPv6 PTB forwarded to a backend */
	G_NONSYN_MISS,    /* non-SYN packet with no flow entry (mid-flow takeover) */
	G_FLOOD_GUARD,    /* new flows not recorded because of the per-CPU rate guard */
	G_REPICK,         /* flow entry pointing at a down backend, re-picked */
	G_COUNTERS,
};

#define NSEC_PER_SEC 1000000000ULL

#endif
