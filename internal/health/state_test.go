package health

import (
	"strings"
	"testing"
)

func TestMachine(t *testing.T) {
	const (
		G = Good
		P = BackPressure
		B = Bad
	)
	tests := []struct {
		name       string
		rise, fall int
		initial    State
		verdicts   []Verdict
		want       []State // the state after each verdict
	}{
		{"first good probe is up at once", 2, 2, "", []Verdict{G, G}, []State{StateUp, StateUp}},
		{"first bad probe is down at once", 2, 2, "", []Verdict{B}, []State{StateDown}},
		{"first back pressure drains at once", 2, 2, "", []Verdict{P}, []State{StateDraining}},
		{"fall bad probes take it down", 2, 2, "", []Verdict{G, B, B}, []State{StateUp, StateUp, StateDown}},
		{"a good probe resets the fall count", 2, 2, "", []Verdict{G, B, G, B, G}, []State{StateUp, StateUp, StateUp, StateUp, StateUp}},
		{"fall back-pressure probes drain", 2, 2, "", []Verdict{G, P, P}, []State{StateUp, StateUp, StateDraining}},
		{"mixed non-good probes: the latest kind wins", 2, 2, "", []Verdict{G, P, B}, []State{StateUp, StateUp, StateDown}},
		{"mixed the other way", 2, 2, "", []Verdict{G, B, P}, []State{StateUp, StateUp, StateDraining}},
		{"draining turns down on a bad probe once past fall", 2, 2, "", []Verdict{G, P, P, B}, []State{StateUp, StateUp, StateDraining, StateDown}},
		{"rise good probes bring it back", 2, 2, "", []Verdict{B, G, G}, []State{StateDown, StateDown, StateUp}},
		{"rise 3", 3, 1, "", []Verdict{P, G, G, B, G, G, G}, []State{StateDraining, StateDraining, StateDraining, StateDown, StateDown, StateDown, StateUp}},
		{"fall 1", 1, 1, "", []Verdict{G, P, G, B}, []State{StateUp, StateDraining, StateUp, StateDown}},
		{"thresholds below 1 count as 1", 0, -1, "", []Verdict{G, B, G}, []State{StateUp, StateDown, StateUp}},
		{"restored state stands until rise", 2, 2, StateDraining, []Verdict{G, G}, []State{StateDraining, StateUp}},
		{"restored state stands until fall", 2, 2, StateUp, []Verdict{B, B}, []State{StateUp, StateDown}},
		{"restored down needs rise", 2, 2, StateDown, []Verdict{G, B, G, G}, []State{StateDown, StateDown, StateDown, StateUp}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m := NewMachine(tc.rise, tc.fall, tc.initial)
			if tc.initial == "" && m.State() != StateUnknown {
				t.Fatalf("new machine is %q, want unknown", m.State())
			}
			var got []State
			for _, v := range tc.verdicts {
				before := m.State()
				old, cur := m.Observe(v)
				if old != before || cur != m.State() {
					t.Fatalf("Observe returned %q -> %q, machine went %q -> %q", old, cur, before, m.State())
				}
				got = append(got, cur)
			}
			if strings.Join(states(got), ",") != strings.Join(states(tc.want), ",") {
				t.Errorf("verdicts %v: states %v, want %v", tc.verdicts, got, tc.want)
			}
		})
	}
}

func states(s []State) []string {
	out := make([]string, len(s))
	for i, v := range s {
		out[i] = string(v)
	}
	return out
}
