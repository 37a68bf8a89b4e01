package maps

import (
	"errors"
	"fmt"

	"github.com/cilium/ebpf"
)

// SwapRing installs table as VIP id's Maglev ring atomically: it fills a
// fresh inner map and swaps it into the rings array-of-maps with one update,
// so the program sees either the old table or the new one, never a mix.
func (d *Dataplane) SwapRing(vipID uint32, table []uint32) error {
	if uint32(len(table)) != d.ringSize {
		return fmt.Errorf("swap ring of VIP %d: table has %d slots, ring size is %d", vipID, len(table), d.ringSize)
	}
	inner, err := ebpf.NewMap(d.ringSpec)
	if err != nil {
		return fmt.Errorf("swap ring of VIP %d: new inner map: %w", vipID, err)
	}
	defer inner.Close() // the outer map holds its own reference
	keys := make([]uint32, len(table))
	for i := range keys {
		keys[i] = uint32(i)
	}
	if _, err := inner.BatchUpdate(keys, table, nil); err != nil {
		return fmt.Errorf("swap ring of VIP %d: fill: %w", vipID, err)
	}
	if err := d.objs.Rings.Put(vipID, inner); err != nil {
		return fmt.Errorf("swap ring of VIP %d: %w", vipID, err)
	}
	return nil
}

// ClearRing empties VIP id's ring: its traffic then goes to the kernel
// (XDP_PASS), where the sorry server or a RST answers.
func (d *Dataplane) ClearRing(vipID uint32) error {
	if err := d.objs.Rings.Delete(vipID); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
		return fmt.Errorf("clear ring of VIP %d: %w", vipID, err)
	}
	return nil
}

// Ring reads VIP id's current ring; nil when it is empty.
func (d *Dataplane) Ring(vipID uint32) ([]uint32, error) {
	var innerID ebpf.MapID
	if err := d.objs.Rings.Lookup(vipID, &innerID); err != nil {
		if errors.Is(err, ebpf.ErrKeyNotExist) {
			return nil, nil
		}
		return nil, fmt.Errorf("read ring of VIP %d: %w", vipID, err)
	}
	inner, err := ebpf.NewMapFromID(innerID)
	if err != nil {
		return nil, fmt.Errorf("read ring of VIP %d: open inner map %d: %w", vipID, innerID, err)
	}
	defer inner.Close()
	n := inner.MaxEntries()
	keys := make([]uint32, n)
	vals := make([]uint32, n)
	var cursor ebpf.MapBatchCursor
	got := 0
	for got < int(n) {
		c, err := inner.BatchLookup(&cursor, keys[got:], vals[got:], nil)
		got += c
		if errors.Is(err, ebpf.ErrKeyNotExist) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("read ring of VIP %d: %w", vipID, err)
		}
	}
	table := make([]uint32, n)
	for i := 0; i < got; i++ {
		table[keys[i]] = vals[i]
	}
	return table, nil
}
