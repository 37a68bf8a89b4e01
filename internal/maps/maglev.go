package maps

import (
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"net/netip"
	"slices"

	"github.com/dsrlb/dsrlb/internal/config"
)

// MaglevBackend is one entry of a Maglev table build.
type MaglevBackend struct {
	// ID is what the table's slots hold (the real id).
	ID uint32
	// Address identifies the backend: its permutation derives from it, not
	// from its position in the config, so reordering changes nothing.
	Address netip.Addr
	// Weight is the relative share of slots (> 0).
	Weight uint32
}

// BuildMaglev fills a table of m slots (m prime) with backend ids, each
// backend getting a share of slots proportional to its weight (Maglev,
// Eisenbud et al., NSDI 2016, with weighted turns). The result depends only
// on the set of (address, weight, id), not on the order of backends. An
// empty set gives nil.
func BuildMaglev(backends []MaglevBackend, m uint32) ([]uint32, error) {
	if len(backends) == 0 {
		return nil, nil
	}
	if !config.IsPrime(m) {
		return nil, fmt.Errorf("maglev: table size %d is not prime", m)
	}
	bs := slices.Clone(backends)
	slices.SortFunc(bs, func(a, b MaglevBackend) int { return a.Address.Compare(b.Address) })
	var maxW uint32
	for i, b := range bs {
		if b.Weight == 0 {
			return nil, fmt.Errorf("maglev: backend %s has weight 0", b.Address)
		}
		if i > 0 && bs[i-1].Address == b.Address {
			return nil, fmt.Errorf("maglev: backend %s listed twice", b.Address)
		}
		maxW = max(maxW, b.Weight)
	}

	offset := make([]uint64, len(bs))
	skip := make([]uint64, len(bs))
	next := make([]uint64, len(bs))
	credit := make([]uint64, len(bs))
	for i, b := range bs {
		offset[i], skip[i] = permutation(b.Address, uint64(m))
	}
	const empty = ^uint32(0)
	table := make([]uint32, m)
	for i := range table {
		table[i] = empty
	}
	filled := uint32(0)
	for filled < m {
		for i, b := range bs {
			// Weighted turns: a backend claims a slot each time its credit
			// reaches the largest weight, so the heaviest claims every round.
			credit[i] += uint64(b.Weight)
			if credit[i] < uint64(maxW) {
				continue
			}
			credit[i] -= uint64(maxW)
			slot := (offset[i] + next[i]*skip[i]) % uint64(m)
			for table[slot] != empty {
				next[i]++
				slot = (offset[i] + next[i]*skip[i]) % uint64(m)
			}
			table[slot] = b.ID
			next[i]++
			filled++
			if filled == m {
				break
			}
		}
	}
	return table, nil
}

// permutation derives a backend's (offset, skip) from its address.
func permutation(a netip.Addr, m uint64) (offset, skip uint64) {
	b := a.Unmap().AsSlice()
	h := sha256.Sum256(append([]byte("dsrlb-maglev:"), b...))
	offset = binary.LittleEndian.Uint64(h[0:8]) % m
	skip = binary.LittleEndian.Uint64(h[8:16])%(m-1) + 1
	return offset, skip
}

// Shares returns, for each id in table, the fraction of slots it holds.
func Shares(table []uint32) map[uint32]float64 {
	counts := map[uint32]int{}
	for _, id := range table {
		counts[id]++
	}
	out := make(map[uint32]float64, len(counts))
	for id, n := range counts {
		out[id] = float64(n) / float64(len(table))
	}
	return out
}
