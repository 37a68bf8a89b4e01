package maps

import (
	"encoding/binary"
	"math/bits"
	"net/netip"
)

// jhashInit is JHASH_INITVAL of bpf/hash.h.
const jhashInit = 0xdeadbeef

// FlowHash is the Go mirror of flow_hash in bpf/hash.h: the seeded hash of
// a flow's 5-tuple (or its source address only when sourceOnly). Each
// backend pick is FlowHash(...) % ring size. Tested equal to the kernel's.
func FlowHash(k FlowKey, sourceOnly bool, seed uint32) uint32 {
	raw := k.raw()
	var b [40]byte
	copy(b[0:16], raw.Src[:])
	copy(b[16:32], raw.Dst[:])
	binary.LittleEndian.PutUint16(b[32:], raw.Sport)
	binary.LittleEndian.PutUint16(b[34:], raw.Dport)
	b[36], b[37] = raw.Proto, raw.Family
	var w [10]uint32
	for i := range w {
		w[i] = binary.LittleEndian.Uint32(b[i*4:])
	}
	if sourceOnly {
		return jhashWords(w[:4], seed)
	}
	return jhashWords(w[:], seed)
}

// jhashWords is the kernel's jhash2 (lookup3's hashword).
func jhashWords(k []uint32, seed uint32) uint32 {
	a := uint32(jhashInit) + uint32(len(k))<<2 + seed
	b, c := a, a
	for len(k) > 3 {
		a += k[0]
		b += k[1]
		c += k[2]
		a, b, c = jhashMix(a, b, c)
		k = k[3:]
	}
	switch len(k) {
	case 3:
		c += k[2]
		fallthrough
	case 2:
		b += k[1]
		fallthrough
	case 1:
		a += k[0]
		a, b, c = jhashFinal(a, b, c)
	}
	return c
}

func jhashMix(a, b, c uint32) (uint32, uint32, uint32) {
	a -= c
	a ^= bits.RotateLeft32(c, 4)
	c += b
	b -= a
	b ^= bits.RotateLeft32(a, 6)
	a += c
	c -= b
	c ^= bits.RotateLeft32(b, 8)
	b += a
	a -= c
	a ^= bits.RotateLeft32(c, 16)
	c += b
	b -= a
	b ^= bits.RotateLeft32(a, 19)
	a += c
	c -= b
	c ^= bits.RotateLeft32(b, 4)
	b += a
	return a, b, c
}

func jhashFinal(a, b, c uint32) (uint32, uint32, uint32) {
	c ^= b
	c -= bits.RotateLeft32(b, 14)
	a ^= c
	a -= bits.RotateLeft32(c, 11)
	b ^= a
	b -= bits.RotateLeft32(a, 25)
	c ^= b
	c -= bits.RotateLeft32(b, 16)
	a ^= c
	a -= bits.RotateLeft32(c, 4)
	b ^= a
	b -= bits.RotateLeft32(a, 14)
	c ^= b
	c -= bits.RotateLeft32(b, 24)
	return a, b, c
}

// NewFlowKey builds the flow key of a TCP connection from src:sport to dst:dport.
func NewFlowKey(src, dst netip.AddrPort) FlowKey {
	s, fam := addr16(src.Addr())
	d, _ := addr16(dst.Addr())
	return FlowKey{Src: s, Dst: d, SPort: src.Port(), DPort: dst.Port(), Family: fam}
}
