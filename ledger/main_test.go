package ledger_test

import (
	"os"
	"testing"

	"pgregory.net/rapid"
)

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "ledger-test-")
	if err != nil {
		panic(err)
	}
	tempDir = func(t *rapid.T) string {
		d, err := os.MkdirTemp(dir, "r")
		if err != nil {
			t.Fatal(err)
		}
		return d
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}
