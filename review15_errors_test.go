package storeline_test

import (
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"syscall"
	"testing"

	"github.com/storeline/storeline"
)

// TestReview15IsIOError: the errors of file operations, however wrapped,
// are I/O errors; a network error (which wraps an *os.SyscallError too)
// and domain errors are not.
func TestReview15IsIOError(t *testing.T) {
	path := &fs.PathError{Op: "sync", Path: "/data/wal/wal-1.seg", Err: syscall.EIO}
	link := &os.LinkError{Op: "rename", Old: "/data/a.tmp", New: "/data/a", Err: syscall.EXDEV}
	sys := os.NewSyscallError("fallocate", syscall.ENOSPC)
	netErr := &net.OpError{Op: "dial", Net: "tcp", Err: os.NewSyscallError("connect", syscall.ECONNREFUSED)}
	for _, c := range []struct {
		err  error
		want bool
	}{
		{nil, false},
		{errors.New("plain"), false},
		{storeline.Invalidf("qty", "must be positive"), false},
		{path, true},
		{storeline.E("ledger.commit", storeline.Unavailable, fmt.Errorf("wal sync: %w", path)), true},
		{link, true},
		{storeline.E("ledger.commit", storeline.InsufficientStorage, sys), true},
		{netErr, false},
		{storeline.E("central.Submit", storeline.Unavailable, fmt.Errorf("outcome unknown: %w", netErr)), false},
		{errors.Join(netErr, path), true},
	} {
		if got := storeline.IsIOError(c.err); got != c.want {
			t.Errorf("IsIOError(%v) = %v, want %v", c.err, got, c.want)
		}
	}
}
