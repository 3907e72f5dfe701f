package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sync/atomic"
	"syscall"
)

// probe is the disk's own limit: one serial stream of 4 KiB appends, each
// followed by fdatasync (performance-anchors §4.4). It has one client.
type probe struct {
	dir   string
	f     *os.File
	blk   []byte
	syncs atomic.Int64
}

func newProbe(dir string) *probe { return &probe{dir: dir} }

func (p *probe) Name() string { return nameProbe }
func (p *probe) Unit() string { return "receipt" }

func (p *probe) Open(ctx context.Context, clients int) error {
	if clients != 1 {
		return fmt.Errorf("bench: the probe has one client, not %d", clients)
	}
	if err := os.MkdirAll(p.dir, 0o755); err != nil {
		return err
	}
	f, err := os.OpenFile(filepath.Join(p.dir, "probe"), os.O_CREATE|os.O_WRONLY|os.O_TRUNC|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("bench: probe: %w", err)
	}
	p.f, p.blk = f, make([]byte, 4096)
	return nil
}

func (p *probe) Client(int) Client { return p }

func (p *probe) Do(context.Context) (int, error) {
	if _, err := p.f.Write(p.blk); err != nil {
		return 0, fmt.Errorf("bench: probe write: %w", err)
	}
	if err := syscall.Fdatasync(int(p.f.Fd())); err != nil {
		return 0, fmt.Errorf("bench: probe fdatasync: %w", err)
	}
	p.syncs.Add(1)
	return 1, nil
}

func (p *probe) Syncs() (int64, error) { return p.syncs.Load(), nil }

func (p *probe) Describe(context.Context) (string, error) {
	return "4 KiB write(2) with O_APPEND, then fdatasync(2), one stream", nil
}

func (p *probe) Close() error {
	if p.f == nil {
		return nil
	}
	return p.f.Close()
}
