package smtplog

// sessionKey identifies a session: Exchange session ids are unique per
// transport service, and connector-ids carry the server's name.
type sessionKey struct {
	connector, session string
}

// openSession is a session seen but not yet disconnected.
type openSession struct {
	key sessionKey
	// counts are the tallies its lines add to: connector, server, remote
	// IP, local endpoint.
	counts     [4]*tally
	prev, next *openSession
}

// lru is the bounded set of open sessions, most recently active first. A
// session leaves it at its `-` (disconnect) line, or when the set is full
// and it is the least recently active.
type lru struct {
	max  int
	m    map[sessionKey]*openSession
	root openSession // sentinel: root.next is the newest, root.prev the oldest
}

func newLRU(max int) *lru {
	l := &lru{max: max, m: make(map[sessionKey]*openSession)}
	l.root.next, l.root.prev = &l.root, &l.root
	return l
}

// get returns the open session for k, marking it recently active.
func (l *lru) get(k sessionKey) *openSession {
	s := l.m[k]
	if s != nil && l.root.next != s {
		l.unlink(s)
		l.pushFront(s)
	}
	return s
}

// add inserts s and reports whether the oldest session had to be evicted.
func (l *lru) add(s *openSession) bool {
	evicted := false
	if len(l.m) >= l.max {
		l.remove(l.root.prev)
		evicted = true
	}
	l.m[s.key] = s
	l.pushFront(s)
	return evicted
}

// remove forgets s.
func (l *lru) remove(s *openSession) {
	delete(l.m, s.key)
	l.unlink(s)
}

// len is the number of open sessions.
func (l *lru) len() int { return len(l.m) }

func (l *lru) unlink(s *openSession) {
	s.prev.next, s.next.prev = s.next, s.prev
	s.prev, s.next = nil, nil
}

func (l *lru) pushFront(s *openSession) {
	s.prev, s.next = &l.root, l.root.next
	l.root.next.prev = s
	l.root.next = s
}
