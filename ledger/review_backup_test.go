package ledger_test

import (
	"bytes"
	"context"
	"fmt"
	"io/fs"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/storeline/storeline/internal/testwait"
	"github.com/storeline/storeline/ledger"
)

// copyTree copies the files under src to dst, as a crash (a killed
// process) would leave them: the page cache's content. cp keeps Badger's
// preallocated files sparse.
func copyTree(t *testing.T, src, dst string) {
	t.Helper()
	if out, err := exec.Command("cp", "-a", "--sparse=always", src, dst).CombinedOutput(); err != nil {
		t.Fatalf("cp: %v: %s", err, out)
	}
}

// allocated is the disk space the files under dir take.
func allocated(t *testing.T, dir string) int64 {
	t.Helper()
	var n int64
	err := filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		if st, ok := info.Sys().(*syscall.Stat_t); ok {
			n += st.Blocks * 512
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// stallReader gives r's first n bytes, then waits for release before the
// rest; stalled is closed when it starts waiting.
type stallReader struct {
	r                *bytes.Reader
	n                int64
	stalled, release chan struct{}
}

func (s *stallReader) Read(p []byte) (int, error) {
	if left := s.n - (s.r.Size() - int64(s.r.Len())); left > 0 {
		return s.r.Read(p[:min(int64(len(p)), left)])
	}
	if s.stalled != nil {
		close(s.stalled)
		s.stalled = nil
		<-s.release
	}
	return s.r.Read(p)
}

// TestReviewRestoreKilledMidway: a restore is killed (a power cut, an
// operator's ^C) after Badger's Load wrote part of the backup, before the
// new epoch is set. What it leaves must be neither a ledger holding part
// of the backup (at the backup's epoch, whose sequence numbers the lost
// node already gave out) nor a directory a retried restore refuses.
func TestReviewRestoreKilledMidway(t *testing.T) {
	ctx := context.Background()
	o := testOptions(t.TempDir())
	o.MaxBatchBytes = 4 << 20
	o.MemTableBytes = 32 << 20
	o.WALSegmentBytes = 8 << 20
	l := open(t, o)
	// About 1.8 MB of small meta values: more than one of the restore's
	// Badger batches (15% of its memtable, 4 MiB here), so Load writes
	// some before it reaches the stream's end.
	defer ledger.SetRestoreMemTable(4 << 20)()
	val := bytes.Repeat([]byte("v"), 480)
	var from []byte
	for page := 0; page < 4; page++ {
		meta := map[string][]byte{}
		for i := 0; i < 900; i++ {
			meta[fmt.Sprintf("m.%d.%05d", page, i)] = val
		}
		to := []byte(fmt.Sprintf("c%d", page))
		if _, err := l.ApplyPulled(ctx, ledger.PulledPage{CursorKey: "cur", From: from, To: to, Meta: meta}); err != nil {
			t.Fatal(err)
		}
		from = to
	}
	var buf bytes.Buffer
	if err := l.Backup(&buf); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "restored")
	// The stream stalls before its end marker and trailer: Load has read
	// every entry and is waiting for the next.
	sr := &stallReader{r: bytes.NewReader(buf.Bytes()), n: int64(buf.Len() - 16), stalled: make(chan struct{}), release: make(chan struct{})}
	stalled := sr.stalled
	done := make(chan error, 1)
	go func() { done <- ledger.Restore(dir, sr, 1_000_000) }()
	select {
	case <-stalled:
	case err := <-done:
		t.Fatalf("Restore ended before the stall: %v", err)
	}
	// Load's batches sent so far reach the files: wait until they hold
	// some of the backup (blocks allocated, for Badger's files are sparse).
	testwait.For(t, "the stalled restore's first batches on disk", 10*time.Second, func() bool { return allocated(t, dir) >= 512<<10 })
	crash1, crash2 := filepath.Join(t.TempDir(), "c1"), filepath.Join(t.TempDir(), "c2")
	copyTree(t, dir, crash1)
	copyTree(t, dir, crash2)
	close(sr.release)
	if err := <-done; err != nil {
		t.Fatalf("Restore: %v", err)
	}

	// A retry of the restore into what the killed one left works.
	if err := ledger.Restore(crash1, bytes.NewReader(buf.Bytes()), 1_000_000); err != nil {
		t.Errorf("Restore again after a killed restore: %v", err)
	} else {
		r := open(t, testOptions(crash1))
		if v, ok, err := r.Meta("m.3.00899"); err != nil || !ok || !bytes.Equal(v, val) {
			t.Errorf("retried restore: meta %d bytes, %v, %v", len(v), ok, err)
		}
		r.Close()
	}

	// The node started on what the killed restore left holds nothing of
	// the backup (it is as a node started on an empty directory), or
	// refuses to open.
	r, err := ledger.Open(testOptions(crash2))
	if err != nil {
		t.Logf("Open after a killed restore refused: %v", err)
		return
	}
	defer r.Close()
	n := 0
	for page := 0; page < 4; page++ {
		for i := 0; i < 900; i += 10 { // a sample
			if _, ok, err := r.Meta(fmt.Sprintf("m.%d.%05d", page, i)); err != nil {
				t.Fatal(err)
			} else if ok {
				n++
			}
		}
	}
	cur, _, _ := r.Meta("cur")
	if n > 0 {
		t.Errorf("a node opened on a killed restore's directory holds %d of a sample of 360 of the backup's 3600 meta values (cursor %q), at position %v", n, cur, r.Position())
	}
}
