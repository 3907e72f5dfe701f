package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/storeline/storeline/crdt"
	"github.com/storeline/storeline/ledger"
)

// cmdRestore restores a backup into a stopped node's data directory, which
// must be empty or absent. The restored ledger takes the HLC time of the
// restore as its new epoch, so epochs only grow however often a backup is
// restored (DESIGN.md, "The event model").
func cmdRestore(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("storeline restore", flag.ContinueOnError)
	fs.SetOutput(stderr)
	dir := fs.String("data", getenv(envName("data")), "data directory to restore into: empty or absent (env "+envName("data")+")")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: storeline restore -data DIR BACKUP-FILE\n\nRestores a backup (from 'storeline ctl backup') into a stopped node's\nempty data directory.\n\nflags:")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return exitOK
		}
		return exitUsage
	}
	if *dir == "" || fs.NArg() != 1 {
		fs.Usage()
		return exitUsage
	}
	if err := restore(*dir, fs.Arg(0), time.Now()); err != nil {
		fmt.Fprintf(stderr, "storeline restore: %v\n", err)
		return exitError
	}
	fmt.Fprintf(stdout, "restored %s into %s\n", fs.Arg(0), *dir)
	return exitOK
}

func restore(dir, file string, now time.Time) error {
	ents, err := os.ReadDir(dir)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	if len(ents) > 0 {
		return fmt.Errorf("data directory %s is not empty; restore only into an empty one", dir)
	}
	f, err := os.Open(file)
	if err != nil {
		return err
	}
	defer f.Close()
	epoch := uint64(crdt.MakeTimestamp(now.UnixMilli(), 0))
	return ledger.Restore(dir, f, epoch)
}
