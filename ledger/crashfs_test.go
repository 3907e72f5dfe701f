package ledger_test

import (
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"sync"

	"github.com/storeline/storeline/ledger"
)

// crashFS is an in-memory file system that can lose power: Crash drops
// every byte written to a file after its last completed Sync, and every
// directory change (create, rename, remove) after the last SyncDir. It
// models one directory level, which is all the WAL uses.
type crashFS struct {
	mu      sync.Mutex
	files   map[string]*inode // the namespace as the process sees it
	durable map[string]*inode // the namespace as the disk holds it
}

type inode struct {
	data   []byte // what reads see
	synced []byte // what survives a crash
	dirty  [][2]int64
}

func newCrashFS() *crashFS {
	return &crashFS{files: map[string]*inode{}, durable: map[string]*inode{}}
}

// Crash loses everything not synced. Files open at the time must not be
// used afterwards.
func (c *crashFS) Crash() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.files = map[string]*inode{}
	for name, n := range c.durable {
		n.data = append([]byte(nil), n.synced...)
		n.dirty = nil
		c.files[name] = n
	}
}

type crashFile struct {
	c *crashFS
	n *inode
}

func (c *crashFS) OpenFile(name string, flag int, _ fs.FileMode) (ledger.File, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	n, ok := c.files[name]
	if !ok {
		if flag&os.O_CREATE == 0 {
			return nil, &fs.PathError{Op: "open", Path: name, Err: fs.ErrNotExist}
		}
		n = &inode{}
		c.files[name] = n
	}
	if flag&os.O_TRUNC != 0 {
		n.data = n.data[:0]
		n.dirty = append(n.dirty, [2]int64{0, 0})
	}
	return &crashFile{c, n}, nil
}

func (c *crashFS) Rename(o, nw string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	n, ok := c.files[o]
	if !ok {
		return &fs.PathError{Op: "rename", Path: o, Err: fs.ErrNotExist}
	}
	delete(c.files, o)
	c.files[nw] = n
	return nil
}

func (c *crashFS) Remove(name string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.files[name]; !ok {
		return &fs.PathError{Op: "remove", Path: name, Err: fs.ErrNotExist}
	}
	delete(c.files, name)
	return nil
}

func (c *crashFS) ReadDir(dir string) ([]string, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	var names []string
	for name := range c.files {
		if filepath.Dir(name) == filepath.Clean(dir) {
			names = append(names, filepath.Base(name))
		}
	}
	sort.Strings(names)
	return names, nil
}

func (c *crashFS) MkdirAll(string) error { return nil }

func (c *crashFS) SyncDir(dir string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	for name := range c.durable {
		if filepath.Dir(name) == filepath.Clean(dir) {
			delete(c.durable, name)
		}
	}
	for name, n := range c.files {
		if filepath.Dir(name) == filepath.Clean(dir) {
			c.durable[name] = n
		}
	}
	return nil
}

// totalBytes is for tests that check segments are dropped.
func (c *crashFS) names() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []string
	for name := range c.files {
		out = append(out, filepath.Base(name))
	}
	sort.Strings(out)
	return out
}

func (f *crashFile) ReadAt(p []byte, off int64) (int, error) {
	f.c.mu.Lock()
	defer f.c.mu.Unlock()
	if off >= int64(len(f.n.data)) {
		return 0, io.EOF
	}
	n := copy(p, f.n.data[off:])
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

func (f *crashFile) WriteAt(p []byte, off int64) (int, error) {
	f.c.mu.Lock()
	defer f.c.mu.Unlock()
	if end := off + int64(len(p)); end > int64(len(f.n.data)) {
		f.n.data = append(f.n.data, make([]byte, end-int64(len(f.n.data)))...)
	}
	copy(f.n.data[off:], p)
	f.n.dirty = append(f.n.dirty, [2]int64{off, int64(len(p))})
	return len(p), nil
}

func (f *crashFile) Sync() error {
	f.c.mu.Lock()
	defer f.c.mu.Unlock()
	n := f.n
	if len(n.synced) != len(n.data) {
		if len(n.synced) > len(n.data) {
			n.synced = n.synced[:len(n.data)]
		} else {
			n.synced = append(n.synced, make([]byte, len(n.data)-len(n.synced))...)
		}
	}
	for _, d := range n.dirty {
		end := min(d[0]+d[1], int64(len(n.data)))
		if d[0] < end {
			copy(n.synced[d[0]:end], n.data[d[0]:end])
		}
	}
	n.dirty = n.dirty[:0]
	return nil
}

func (f *crashFile) Close() error { return nil }

var errInjected = errors.New("injected I/O error")
