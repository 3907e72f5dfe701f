package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/storeline/storeline/central"
	"github.com/storeline/storeline/crdt"
	"github.com/storeline/storeline/ledger"
)

// cmdRestore restores a backup into a stopped node's data directory, which
// must be empty or absent. The restored ledger takes the HLC time of the
// restore as its new epoch, so epochs only grow however often a backup is
// restored (DESIGN.md, "The event model").
//
// With -central it restores a central node instead: the backup is a copy of
// a stopped central node's data directory, and the restored directory is
// marked so that the node, once in a working cluster, gives the cluster a
// new incarnation and every shop resyncs (central/restore.go). -mark marks
// a directory copied back by other means.
func cmdRestore(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("storeline restore", flag.ContinueOnError)
	fs.SetOutput(stderr)
	dir := fs.String("data", getenv(envName("data")), "data directory to restore into: empty or absent (env "+envName("data")+")")
	isCentral := fs.Bool("central", false, "restore a central node: BACKUP is a copy of a stopped central node's data directory")
	markOnly := fs.Bool("mark", false, "with -central: only mark -data, already copied back from a backup, as restored (no BACKUP argument)")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: storeline restore -data DIR BACKUP-FILE\n       storeline restore -central -data DIR BACKUP-DIR\n       storeline restore -central -mark -data DIR\n\nRestores a backup (from 'storeline ctl backup') into a stopped node's\nempty data directory; a truncated or damaged backup, or one taken before\nthis version's format, is refused and the directory left empty. With\n-central, restores a copy of a stopped central node's data directory into\nanother, marked so that the cluster takes a new incarnation and the shops\nresync. Restore every central node this way before starting any.\n\nflags:")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return exitOK
		}
		return exitUsage
	}
	wantArgs := 1
	if *markOnly {
		wantArgs = 0
	}
	if *dir == "" || fs.NArg() != wantArgs || (*markOnly && !*isCentral) {
		fs.Usage()
		return exitUsage
	}
	if *isCentral {
		var err error
		if *markOnly {
			err = central.MarkRestored(*dir)
		} else {
			err = restoreCentral(fs.Arg(0), *dir)
		}
		if err != nil {
			fmt.Fprintf(stderr, "storeline restore: %v\n", err)
			return exitError
		}
		if *markOnly {
			fmt.Fprintf(stdout, "marked %s restored: the cluster takes a new incarnation once it runs\n", *dir)
		} else {
			fmt.Fprintf(stdout, "restored central node %s into %s: start every restored node, the cluster then takes a new incarnation\n", fs.Arg(0), *dir)
		}
		return exitOK
	}
	if err := restore(*dir, fs.Arg(0), time.Now()); err != nil {
		fmt.Fprintf(stderr, "storeline restore: %v\n", err)
		return exitError
	}
	fmt.Fprintf(stdout, "restored %s into %s\n", fs.Arg(0), *dir)
	return exitOK
}

// restoreCentral copies a central node's backup into dir, which must be
// empty or absent, and marks it restored. A restore that fails midway
// (a copy cut short, a backup that cannot be marked) leaves dir as it
// was: half a node's state, unmarked, must not be started, and would make
// a second restore refuse the directory as not empty.
func restoreCentral(backup, dir string) error {
	ents, err := os.ReadDir(dir)
	absent, empty := errors.Is(err, fs.ErrNotExist), err == nil && len(ents) == 0
	err = central.RestoreBackup(backup, dir)
	if err == nil || (!absent && !empty) {
		return err
	}
	var cleanup error
	if absent {
		cleanup = os.RemoveAll(dir)
	} else if ents, rerr := os.ReadDir(dir); rerr != nil {
		cleanup = rerr
	} else {
		for _, e := range ents {
			cleanup = errors.Join(cleanup, os.RemoveAll(filepath.Join(dir, e.Name())))
		}
	}
	if cleanup != nil {
		return errors.Join(err, fmt.Errorf("remove the failed restore from %s (empty it before trying again): %w", dir, cleanup))
	}
	return err
}

// restore restores file into dir; ledger.Restore refuses a directory that
// is not empty (but for what a restore killed midway left).
func restore(dir, file string, now time.Time) error {
	f, err := os.Open(file)
	if err != nil {
		return err
	}
	defer f.Close()
	// A directory opens, and reads as nothing: the ledger would call it
	// "not a ledger backup" with a header of zeros. It is most likely a
	// central node's backup, which is a directory.
	if st, err := f.Stat(); err != nil {
		return err
	} else if st.IsDir() {
		return fmt.Errorf("%s is a directory: a store node's backup is the file 'storeline ctl backup' wrote; a central node's data directory is restored with -central", file)
	}
	epoch := uint64(crdt.MakeTimestamp(now.UnixMilli(), 0))
	return ledger.Restore(dir, f, epoch)
}
