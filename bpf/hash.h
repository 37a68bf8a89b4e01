/* hash.h: the seeded flow hash (Bob Jenkins' lookup3 word hash, as the
 * kernel's jhash2). internal/maps.FlowHash is its Go mirror, tested equal. */
#ifndef DSRLB_HASH_H
#define DSRLB_HASH_H

#include <linux/types.h>
#include "structs.h"

#define JHASH_INITVAL 0xdeadbeef

static __always_inline __u32 rol32(__u32 w, unsigned int s)
{
	return (w << s) | (w >> (32 - s));
}

#define jhash_mix(a, b, c)                \
	{                                     \
		a -= c; a ^= rol32(c, 4);  c += b; \
		b -= a; b ^= rol32(a, 6);  a += c; \
		c -= b; c ^= rol32(b, 8);  b += a; \
		a -= c; a ^= rol32(c, 16); c += b; \
		b -= a; b ^= rol32(a, 19); a += c; \
		c -= b; c ^= rol32(b, 4);  b += a; \
	}

#define jhash_final(a, b, c)              \
	{                                     \
		c ^= b; c -= rol32(b, 14);         \
		a ^= c; a -= rol32(c, 11);         \
		b ^= a; b -= rol32(a, 25);         \
		c ^= b; c -= rol32(b, 16);         \
		a ^= c; a -= rol32(c, 4);          \
		b ^= a; b -= rol32(a, 14);         \
		c ^= b; c -= rol32(b, 24);         \
	}

/* Words of struct flow_key: src (4), dst (4), ports (1), proto/family (1). */
#define FLOW_WORDS 10
#define SRC_WORDS 4

/* flow_hash hashes the whole 5-tuple, or the source address only when
 * source_only (persistence = "source-ip"). IPv4 keys are zero-padded, so
 * the same words are hashed for both families. */
static __always_inline __u32 flow_hash(const struct flow_key *k, int source_only, __u32 seed)
{
	const __u32 *w = (const __u32 *)k;
	__u32 a, b, c;

	if (source_only) {
		a = b = c = JHASH_INITVAL + (SRC_WORDS << 2) + seed;
		a += w[0]; b += w[1]; c += w[2];
		jhash_mix(a, b, c);
		a += w[3];
		jhash_final(a, b, c);
		return c;
	}
	a = b = c = JHASH_INITVAL + (FLOW_WORDS << 2) + seed;
	a += w[0]; b += w[1]; c += w[2];
	jhash_mix(a, b, c);
	a += w[3]; b += w[4]; c += w[5];
	jhash_mix(a, b, c);
	a += w[6]; b += w[7]; c += w[8];
	jhash_mix(a, b, c);
	a += w[9];
	jhash_final(a, b, c);
	return c;
}

#endif
