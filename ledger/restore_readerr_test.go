package ledger_test

import (
	"errors"
	"path/filepath"
	"strings"
	"testing"

	"github.com/storeline/storeline/ledger"
)

type failingReader struct{}

func (failingReader) Read([]byte) (int, error) { return 0, errors.New("input/output error") }

// TestRestoreReportsAReadError: a backup that cannot be read (a failing
// disk) is reported as such, not as "not a ledger backup".
func TestRestoreReportsAReadError(t *testing.T) {
	err := ledger.Restore(filepath.Join(t.TempDir(), "d"), failingReader{}, 1000)
	if err == nil || !strings.Contains(err.Error(), "input/output error") || strings.Contains(err.Error(), "not a ledger backup") {
		t.Fatalf("Restore from a failing reader: %v; want the read error", err)
	}
}
