package smtplog

import (
	"io"
	"time"
)

// progress counts bytes read across all files and calls fn at most every
// progressEvery, and once when a file ends.
type progress struct {
	fn    func(done, total int64)
	total int64
	done  int64
	last  time.Time
}

const progressEvery = 200 * time.Millisecond

// wrap returns r, counting what is read from it when progress is wanted.
func (p *progress) wrap(r io.Reader) io.Reader {
	if p.fn == nil {
		return r
	}
	return &progressReader{r: r, p: p}
}

type progressReader struct {
	r io.Reader
	p *progress
}

func (pr *progressReader) Read(b []byte) (int, error) {
	n, err := pr.r.Read(b)
	p := pr.p
	p.done += int64(n)
	if now := time.Now(); err != nil || now.Sub(p.last) >= progressEvery {
		p.last = now
		p.fn(p.done, p.total)
	}
	return n, err
}
