package health

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dsrlb/dsrlb/internal/health/healthtest"
)

// events collects a Checker's events for a test.
type events chan Event

func (e events) on(ev Event) { e <- ev }

// next returns the next event of backend, failing after 2s.
func (e events) next(t *testing.T, backend string) Event {
	t.Helper()
	timeout := time.After(2 * time.Second)
	for {
		select {
		case ev := <-e:
			if ev.Backend == backend {
				return ev
			}
		case <-timeout:
			t.Fatalf("no event for %s within 2s", backend)
		}
	}
}

// until returns the first event of backend in state s.
func (e events) until(t *testing.T, backend string, s State) Event {
	t.Helper()
	for {
		if ev := e.next(t, backend); ev.New == s {
			return ev
		}
	}
}

func newTestChecker(t *testing.T, maxInFlight int) (*Checker, events) {
	t.Helper()
	ev := make(events, 1000)
	c := NewChecker(context.Background(), CheckerOptions{
		MaxInFlight: maxInFlight,
		Logger:      slog.New(slog.NewTextHandler(io.Discard, nil)),
		OnEvent:     ev.on,
	})
	t.Cleanup(c.Stop)
	return c, ev
}

func TestCheckerTransitions(t *testing.T) {
	var busy atomic.Bool
	srv := healthtest.Start(t, healthtest.Backend{MailReply: func(string) error {
		if busy.Load() {
			return healthtest.Reply(452, "4.3.1", "Insufficient system resources")
		}
		return nil
	}})
	c, ev := newTestChecker(t, 4)
	if err := c.Replace([]Target{{VIP: "internet", Backend: "EX1", Addr: srv.Addr, Profile: testProfile()}}); err != nil {
		t.Fatal(err)
	}
	first := ev.next(t, "EX1")
	if !first.Changed || first.Old != StateUnknown || first.New != StateUp || first.VIP != "internet" {
		t.Fatalf("first event %+v, want unknown -> up", first)
	}
	busy.Store(true)
	// fall = 2: one back-pressure probe leaves it up, the second drains it.
	e1 := ev.next(t, "EX1")
	if e1.Changed || e1.New != StateUp || e1.Result.Verdict != BackPressure {
		t.Fatalf("after one 452: %+v, want still up", e1)
	}
	e2 := ev.next(t, "EX1")
	if !e2.Changed || e2.Old != StateUp || e2.New != StateDraining ||
		e2.Reason != "back pressure: 452 4.3.1 Insufficient system resources" {
		t.Fatalf("after two 452s: %+v, want up -> draining", e2)
	}
	st, ok := c.StatusOf("internet", "EX1")
	if !ok || st.State != StateDraining || st.LastReply != "452 4.3.1 Insufficient system resources" || st.CheckedAt.IsZero() {
		t.Fatalf("status %+v", st)
	}
	busy.Store(false)
	r1 := ev.next(t, "EX1")
	if r1.Changed || r1.Reason != "recovering: 1 of 2 good probes" {
		t.Fatalf("first good probe after draining: %+v", r1)
	}
	if r2 := ev.next(t, "EX1"); !r2.Changed || r2.New != StateUp || r2.Reason != "" || r2.Result.Latency <= 0 {
		t.Fatalf("second good probe: %+v, want draining -> up", r2)
	}
}

func TestCheckerConcurrencyBound(t *testing.T) {
	srv := healthtest.Start(t, healthtest.Backend{MailDelay: 80 * time.Millisecond})
	c, ev := newTestChecker(t, 2)
	var targets []Target
	for i := range 6 {
		targets = append(targets, Target{VIP: "v", Backend: fmt.Sprint("B", i), Addr: srv.Addr, Profile: testProfile()})
	}
	if err := c.Replace(targets); err != nil {
		t.Fatal(err)
	}
	for range 18 {
		select {
		case <-ev:
		case <-time.After(3 * time.Second):
			t.Fatal("probes stalled")
		}
	}
	c.Stop()
	_, maxOpen, total := srv.Sessions()
	if maxOpen != 2 || total < 18 {
		t.Errorf("server saw at most %d sessions at once over %d, want exactly 2 (the bound)", maxOpen, total)
	}
	waitFor(t, func() bool { open, _, _ := srv.Sessions(); return open == 0 }, "sessions left open after Stop")
}

func TestCheckerReplace(t *testing.T) {
	srv := healthtest.Start(t, healthtest.Backend{})
	down := healthtest.Start(t, healthtest.Backend{MailReply: func(string) error {
		return healthtest.Reply(550, "5.7.1", "Not allowed")
	}})
	c, ev := newTestChecker(t, 4)
	a := Target{VIP: "v", Backend: "A", Addr: srv.Addr, Profile: testProfile()}
	b := Target{VIP: "v", Backend: "B", Addr: srv.Addr, Profile: testProfile()}
	if err := c.Replace([]Target{a, b}); err != nil {
		t.Fatal(err)
	}
	ev.until(t, "A", StateUp)
	ev.until(t, "B", StateUp)

	// A unchanged keeps its state; B leaves; C arrives; and A's profile
	// change in a second reload keeps its state as a starting point.
	cTarget := Target{VIP: "v", Backend: "C", Addr: down.Addr, Profile: testProfile()}
	if err := c.Replace([]Target{a, cTarget}); err != nil {
		t.Fatal(err)
	}
	if st, _ := c.StatusOf("v", "A"); st.State != StateUp {
		t.Errorf("A after reload: %q, want up kept", st.State)
	}
	if _, ok := c.StatusOf("v", "B"); ok {
		t.Error("B still listed after it was removed")
	}
	if st, _ := c.StatusOf("v", "C"); st.State != StateUnknown || st.Reason != "not probed yet" {
		t.Errorf("C before its first probe: %+v", st)
	}
	if e := ev.next(t, "C"); e.Old != StateUnknown || e.New != StateDown {
		t.Errorf("C first event %+v, want unknown -> down", e)
	}
	for range 3 {
		if e := ev.next(t, "A"); e.Old != StateUp || e.Changed {
			t.Fatalf("A after reload: %+v, want unchanged up", e)
		}
	}
	changed := a
	changed.Profile.MailFrom = "other@corp.example"
	if err := c.Replace([]Target{changed, cTarget}); err != nil {
		t.Fatal(err)
	}
	if st, _ := c.StatusOf("v", "A"); st.State != StateUp {
		t.Errorf("A after a profile change: %q, want up kept as initial state", st.State)
	}
	if err := c.Replace([]Target{a, a}); err == nil {
		t.Error("a target listed twice was accepted")
	}
	quiet := time.After(200 * time.Millisecond)
	for {
		select {
		case e := <-ev:
			if e.Backend == "B" {
				t.Fatalf("event for removed B: %+v", e)
			}
		case <-quiet:
			return
		}
	}
}

func TestCheckerRestoredStateAndPathProbe(t *testing.T) {
	srv := healthtest.Start(t, healthtest.Backend{})
	c, ev := newTestChecker(t, 4)
	pathErr := errors.New("no SYN-ACK")
	p := testProfile()
	p.VIPPath = true
	var pathCalls atomic.Int32
	err := c.Replace([]Target{
		{VIP: "v", Backend: "restored", Addr: srv.Addr, Profile: p, Initial: StateDraining},
		{VIP: "v", Backend: "blackhole", Addr: srv.Addr, Profile: p, PathProbe: func(ctx context.Context) error {
			pathCalls.Add(1)
			if _, ok := ctx.Deadline(); !ok {
				return errors.New("no deadline")
			}
			return pathErr
		}},
	})
	if err != nil {
		t.Fatal(err)
	}
	if e := ev.next(t, "restored"); e.Changed || e.New != StateDraining {
		t.Errorf("restored draining after one good probe: %+v, want still draining (rise 2)", e)
	}
	if e := ev.next(t, "restored"); !e.Changed || e.New != StateUp {
		t.Errorf("restored after two good probes: %+v, want up", e)
	}
	e := ev.next(t, "blackhole")
	if e.New != StateDown || e.Reason != "VIP path: no SYN-ACK" || e.Result.Verdict != Bad || pathCalls.Load() == 0 {
		t.Errorf("blackhole: %+v, want down by the VIP path", e)
	}
}

func TestCheckerStopLeavesNothing(t *testing.T) {
	// A tarpit that ends as soon as the client hangs up, so that the
	// server's own goroutines do not outlive the probes.
	srv := healthtest.StartRaw(t, func(c net.Conn, done <-chan struct{}) {
		c.Write([]byte("220 mx.test ESMTP\r\n"))
		r := bufio.NewReader(c)
		if _, err := r.ReadString('\n'); err != nil {
			return
		}
		c.Write([]byte("250 mx.test\r\n"))
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		io.Copy(io.Discard, r)
	})
	before := runtime.NumGoroutine()
	c := NewChecker(context.Background(), CheckerOptions{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	p := testProfile()
	p.TarpitThreshold = 5 * time.Second
	var targets []Target
	for i := range 4 {
		targets = append(targets, Target{VIP: "v", Backend: fmt.Sprint("B", i), Addr: srv.Addr, Profile: p})
	}
	if err := c.Replace(targets); err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool { open, _, _ := srv.Sessions(); return open == 4 }, "probes did not start")
	start := time.Now()
	c.Stop()
	if d := time.Since(start); d > 500*time.Millisecond {
		t.Errorf("Stop took %s with probes waiting on MAIL FROM", d)
	}
	if err := c.Replace(targets); err == nil || !strings.Contains(err.Error(), "stopped") {
		t.Errorf("Replace after Stop: %v", err)
	}
	waitFor(t, func() bool { return runtime.NumGoroutine() <= before }, "goroutines left after Stop")
}

func TestJitter(t *testing.T) {
	const d = 5 * time.Second
	lo, hi := d, d
	for range 10000 {
		j := jitter(d)
		if j < d*9/10 || j > d*11/10 {
			t.Fatalf("jitter(%s) = %s, outside +-10%%", d, j)
		}
		lo, hi = min(lo, j), max(hi, j)
	}
	if lo > d*92/100 || hi < d*108/100 {
		t.Errorf("jitter spread %s..%s, want it to cover most of 4.5s..5.5s", lo, hi)
	}
	if jitter(5) != 5 {
		t.Error("jitter of a tiny duration changed it")
	}
}
