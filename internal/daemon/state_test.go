package daemon

import (
	"fmt"
	"strings"
	"sync"
	"testing"
)

// TestSetAdminDrainConcurrentKeepsAll: drains recorded at the same time
// (two operators, or the CLI and the daemon's API) are all kept.
func TestSetAdminDrainConcurrentKeepsAll(t *testing.T) {
	dir := t.TempDir()
	const n = 32
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs <- SetAdminDrain(dir, "", fmt.Sprintf("EX%d", i), true)
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	_, a, err := loadState(dir)
	if err != nil {
		t.Fatal(err)
	}
	for i := range n {
		if !a.drained("internet", fmt.Sprintf("EX%d", i)) {
			t.Errorf("drain of EX%d lost (%d of %d kept)", i, len(a.Drained), n)
		}
	}
}

// TestUndrainOneVIPOfDrainEverywhere: `undrain EX1 --vip V` while EX1 is
// drained for every VIP would change nothing yet report success; it is
// refused with the command that does end the drain.
func TestUndrainOneVIPOfDrainEverywhere(t *testing.T) {
	dir := t.TempDir()
	if err := SetAdminDrain(dir, "", "EX1", true); err != nil {
		t.Fatal(err)
	}
	err := SetAdminDrain(dir, "internet", "EX1", false)
	if err == nil || !strings.Contains(err.Error(), "dsrlb undrain EX1") {
		t.Fatalf("undrain of one VIP under a drain of every VIP: %v", err)
	}
	_, a, _ := loadState(dir)
	if !a.drained("internet", "EX1") {
		t.Fatal("drain lost")
	}
	if err := SetAdminDrain(dir, "", "EX1", false); err != nil {
		t.Fatal(err)
	}
	if _, a, _ = loadState(dir); a.drained("internet", "EX1") {
		t.Fatal("undrain without --vip did not end the drain")
	}
}
