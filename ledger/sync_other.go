//go:build !linux

package ledger

import "os"

// fdatasync falls back to fsync where fdatasync is not available.
func fdatasync(f *os.File) error { return f.Sync() }

// bootID is unknown here: Open always reads back the value log.
func bootID() string { return "" }

// dropFileCache cannot drop the page cache here; the read-back reads
// what the cache holds.
func dropFileCache(string) error { return nil }
