package smtplog

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"testing"
	"time"
)

// BenchmarkReport1GB generates a 1 GB SMTP Receive log (50,000 client IPs,
// 8 concurrent sessions interleaved, a log roll every 100,000 sessions)
// and reports throughput (MB/s, from SetBytes) and the peak heap seen
// while reading it, which stays flat whatever the file size.
//
//	go test -run '^$' -bench Report1GB -benchtime 1x ./internal/smtplog
func BenchmarkReport1GB(b *testing.B) {
	const size = 1 << 30
	path := filepath.Join(b.TempDir(), "RECV2013042600-1.LOG")
	f, err := os.Create(path)
	if err != nil {
		b.Fatal(err)
	}
	lw := newLogWriter(f)
	lw.header(DefaultFields())
	var id uint64
	batch := make([]genSession, 8)
	for written := int64(0); written < size; written = fileSize(b, f, lw) {
		for i := range batch {
			id++
			batch[i] = genSession{
				connector: fmt.Sprintf(`SERVER%d\Internal Relay`, id%2+1),
				id:        0x08D0125A00000000 + id,
				local:     "192.0.2.25:25",
				remote:    fmt.Sprintf("10.%d.%d.%d:%d", id%50000/65536, id%50000/256%256, id%256, 1024+id%60000),
			}
		}
		lw.sessions(batch)
		if id%100000 < 8 {
			lw.header(DefaultFields())
		}
	}
	if err := f.Close(); err != nil {
		b.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(fi.Size())

	var peak uint64
	var wg sync.WaitGroup
	done := make(chan struct{})
	wg.Add(1)
	go func() {
		defer wg.Done()
		var ms runtime.MemStats
		for {
			runtime.ReadMemStats(&ms)
			peak = max(peak, ms.HeapAlloc)
			select {
			case <-done:
				return
			case <-time.After(20 * time.Millisecond):
			}
		}
	}()
	runtime.GC()
	b.ResetTimer()
	var r *Report
	for b.Loop() {
		if r, err = Analyze([]string{path}, Options{}); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	close(done)
	wg.Wait()
	b.ReportMetric(float64(peak)/(1<<20), "peak-heap-MB")
	b.ReportMetric(float64(r.Sessions), "sessions")
	if r.Sessions != int64(id) || r.OpenAtEnd != 0 {
		b.Fatalf("sessions %d open %d, want %d 0", r.Sessions, r.OpenAtEnd, id)
	}
}

// fileSize flushes lw and returns the size of f so far.
func fileSize(b *testing.B, f *os.File, lw *logWriter) int64 {
	if err := lw.flush(); err != nil {
		b.Fatal(err)
	}
	fi, err := f.Stat()
	if err != nil {
		b.Fatal(err)
	}
	return fi.Size()
}
