package ledger

import (
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"syscall"

	"github.com/storeline/storeline"
)

// File is the part of *os.File the WAL uses. Sync must make the file's data
// durable (fdatasync on Linux: WAL segments are preallocated, so no
// metadata needs to reach the disk for a write to be durable).
type File interface {
	io.ReaderAt
	io.WriterAt
	Sync() error
	Close() error
}

// FS is the file system the WAL lives on. SyncDir makes the directory's
// entries (creations, renames, removals) durable.
type FS interface {
	OpenFile(name string, flag int, perm fs.FileMode) (File, error)
	Rename(oldname, newname string) error
	Remove(name string) error
	// ReadDir returns the names of the files in dir, sorted.
	ReadDir(dir string) ([]string, error)
	MkdirAll(dir string) error
	SyncDir(dir string) error
}

// Seams replace the I/O steps of the commit pipeline in tests (delay or
// fail a sync, stop before the Badger apply, observe answers). A nil field
// is the real step.
type Seams struct {
	// FS is the file system of the WAL; nil is the operating system's.
	FS FS
	// Write writes one batch frame at off of a segment.
	Write func(f File, p []byte, off int64) error
	// Sync makes the segment durable. The committer calls it once per
	// batch; an error poisons the ledger.
	Sync func(f File) error
	// Apply is called with a batch's LSN after its frame is durable and
	// before it is applied to Badger (for a batch of events, after its
	// waiters were answered); an error poisons the ledger (a test uses it
	// to leave Badger behind the WAL, as a crash would, or to hold an
	// apply back).
	Apply func(lsn uint64) error
	// Publish is called with a batch's LSN and its number of requests after
	// it is applied and published. The waiters of a batch of events were
	// answered at its sync already; those of other batches are answered
	// after Publish returns.
	Publish func(lsn uint64, requests int)
	// BootID names the running boot of the machine: the page cache of one
	// boot survives a crash of the process, so Open need not read back
	// Badger's value log after a restart within the boot that wrote it
	// (vlog.go, invariant 2). A test returns a new one to simulate a power
	// loss. It returns "" where unknown: Open always reads back.
	BootID func() string
	// BadgerSync runs before each sync of Badger (checkpoints, Close, Open's
	// repairs); an error fails that sync, as a failed writeback would.
	BadgerSync func() error
	// Rebuild is called when a rebuild has dropped a view (shift totals,
	// balances) and before it writes it again; an error fails Open there,
	// as a crash would.
	Rebuild func(view string) error
	// FillOwnIDs is called by the background fill of the filter of own
	// IDs (dedup.go) once it holds its snapshot of Badger and before it
	// reads it, and Filled once it has handed the filter over; a test
	// holds the fill to apply events the snapshot lacks.
	FillOwnIDs func()
	Filled     func()
	// ValueLogFileBytes sizes Badger's value-log files (0: Badger's 1 GiB),
	// so a test's few thousand events rotate them.
	ValueLogFileBytes int64
}

func (s *Seams) withDefaults() Seams {
	var out Seams
	if s != nil {
		out = *s
	}
	if out.FS == nil {
		out.FS = osFS{}
	}
	if out.Write == nil {
		out.Write = func(f File, p []byte, off int64) error {
			_, err := f.WriteAt(p, off)
			return err
		}
	}
	if out.Sync == nil {
		out.Sync = func(f File) error { return f.Sync() }
	}
	if out.Apply == nil {
		out.Apply = func(uint64) error { return nil }
	}
	if out.Publish == nil {
		out.Publish = func(uint64, int) {}
	}
	if out.BootID == nil {
		out.BootID = bootID
	}
	return out
}

// OSFS returns the operating system's file system, for tests that wrap it.
func OSFS() FS { return osFS{} }

type osFS struct{}

type osFile struct{ *os.File }

func (f osFile) Sync() error { return fdatasync(f.File) }

func (osFS) OpenFile(name string, flag int, perm fs.FileMode) (File, error) {
	f, err := os.OpenFile(name, flag, perm)
	if err != nil {
		return nil, err
	}
	return osFile{f}, nil
}
func (osFS) Rename(o, n string) error  { return os.Rename(o, n) }
func (osFS) Remove(name string) error  { return os.Remove(name) }
func (osFS) MkdirAll(dir string) error { return os.MkdirAll(dir, 0o755) }
func (osFS) ReadDir(dir string) ([]string, error) {
	es, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	names := make([]string, 0, len(es))
	for _, e := range es {
		if e.Type().IsRegular() {
			names = append(names, e.Name())
		}
	}
	sort.Strings(names)
	return names, nil
}
func (osFS) SyncDir(dir string) error {
	d, err := os.Open(filepath.Clean(dir))
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// ioKind classifies an I/O error: a full disk is InsufficientStorage,
// anything else Unavailable (the ledger cannot go on; retry after reopen).
func ioKind(err error) storeline.Kind {
	if errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT) {
		return storeline.InsufficientStorage
	}
	return storeline.Unavailable
}
