package maps

import "fmt"

// IDAllocator hands out ids in [first, limit). A freed id goes to the back
// of a queue and is handed out again only after every never-used id and
// every id freed before it: a stale flow entry pointing at a removed
// backend's id cannot land on a newly added server soon after.
type IDAllocator struct {
	next, limit uint32
	freed       []uint32
	used        map[uint32]bool
}

// NewIDAllocator returns an allocator of ids first..limit-1.
func NewIDAllocator(first, limit uint32) *IDAllocator {
	return &IDAllocator{next: first, limit: limit, used: map[uint32]bool{}}
}

// Alloc returns a free id.
func (a *IDAllocator) Alloc() (uint32, error) {
	if a.next < a.limit {
		id := a.next
		a.next++
		a.used[id] = true
		return id, nil
	}
	if len(a.freed) == 0 {
		return 0, fmt.Errorf("id allocator: all %d ids in use", len(a.used))
	}
	id := a.freed[0]
	a.freed = a.freed[1:]
	a.used[id] = true
	return id, nil
}

// Reserve marks id as in use (adopting ids found in pinned maps after a
// restart). It fails when id is out of range or already used.
func (a *IDAllocator) Reserve(id uint32) error {
	if id >= a.limit || a.used[id] {
		return fmt.Errorf("id allocator: cannot reserve %d", id)
	}
	for id >= a.next {
		if a.next != id {
			a.freed = append(a.freed, a.next)
		}
		a.next++
	}
	for i, f := range a.freed {
		if f == id {
			a.freed = append(a.freed[:i], a.freed[i+1:]...)
			break
		}
	}
	a.used[id] = true
	return nil
}

// Free returns id to the back of the queue.
func (a *IDAllocator) Free(id uint32) {
	if !a.used[id] {
		return
	}
	delete(a.used, id)
	a.freed = append(a.freed, id)
}
