package health

// State is a backend's health state for one VIP (DESIGN section 4).
type State string

// Backend states. StateUnknown is the state before the first probe: the
// daemon forwards nothing to a backend in it.
const (
	StateUnknown  State = "unknown"
	StateUp       State = "up"
	StateDraining State = "draining"
	StateDown     State = "down"
)

// stateFor is the state a verdict leads to.
func stateFor(v Verdict) State {
	switch v {
	case Good:
		return StateUp
	case BackPressure:
		return StateDraining
	}
	return StateDown
}

// Machine is the rise/fall state machine of one (VIP, backend). It is pure
// (no clock, no I/O) and not safe for concurrent use.
//
//   - Unknown: the first probe sets the state at once (good -> up, back
//     pressure -> draining, bad -> down): one probe round is enough at start.
//   - Otherwise `fall` consecutive non-good probes move the backend to down
//     or draining, after the kind of the latest one, and `rise` consecutive
//     good probes move it back up.
//
// An initial state restored from state_dir stands until probes change it
// through rise/fall.
type Machine struct {
	rise, fall int
	state      State
	good, bad  int // lengths of the current runs of good and non-good probes
}

// NewMachine returns a Machine with thresholds rise and fall (values below
// 1 count as 1) starting in initial ("" means StateUnknown).
func NewMachine(rise, fall int, initial State) *Machine {
	if initial == "" {
		initial = StateUnknown
	}
	return &Machine{rise: max(rise, 1), fall: max(fall, 1), state: initial}
}

// State returns the current state.
func (m *Machine) State() State { return m.state }

// Runs returns how many consecutive good and non-good probes lead up to
// now; one of them is zero.
func (m *Machine) Runs() (good, bad int) { return m.good, m.bad }

// Rise returns the rise threshold.
func (m *Machine) Rise() int { return m.rise }

// Observe feeds one verdict and returns the state before and after it.
func (m *Machine) Observe(v Verdict) (old, cur State) {
	old = m.state
	if v == Good {
		m.good, m.bad = m.good+1, 0
	} else {
		m.good, m.bad = 0, m.bad+1
	}
	switch {
	case m.state == StateUnknown:
		m.state = stateFor(v)
	case v == Good && m.good >= m.rise:
		m.state = StateUp
	case v != Good && m.bad >= m.fall:
		m.state = stateFor(v)
	}
	return old, m.state
}
