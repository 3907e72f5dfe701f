// Command storeline is the one binary of Storeline: a store node, the admin
// client, local maintenance (restore) and a demo.
//
//	storeline node     run a store node
//	storeline ctl      talk to a running node's admin API, or central's (--central URL)
//	storeline central  run a node of the central cluster
//	storeline restore  restore a backup into a stopped node's empty data directory
//	storeline certs    create the chain CA and issue shop and central certificates
//	storeline demo     run a whole chain (central cluster, shops, tills) and check it
//	storeline version  print the version
//
// main is thin: everything happens in run, which end-to-end tests call with
// their own arguments, environment and output.
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	// Business dates follow each store's time zone: a machine without
	// the system's zone files (a minimal container) would refuse every
	// store. The embedded copy is read only where the system has none.
	_ "time/tzdata"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// Exit codes.
const (
	exitOK    = 0
	exitError = 1
	exitUsage = 2
)

type command struct {
	name, summary string
	run           func(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) int
}

func commands() []command {
	return []command{
		{"node", "run a store node", cmdNode},
		{"ctl", "talk to a running node's admin API (--node URL) or central (--central URL)", cmdCtl},
		{"central", "run a node of the central cluster (head office)", cmdCentral},
		{"restore", "restore a backup file into a stopped node's empty data directory", cmdRestore},
		{"certs", "create the chain CA and issue shop and central certificates (local files)", cmdCerts},
		{"demo", "run a whole chain on this machine (3 central nodes, 2 shops, tills) and check it", cmdDemo},
		{"till", "simulate tills against store nodes and report throughput and latency", cmdTill},
		{"version", "print the version", cmdVersion},
	}
}

// run dispatches to a subcommand and returns the process exit code.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		usage(stderr)
		if len(args) == 0 {
			return exitUsage
		}
		return exitOK
	}
	for _, c := range commands() {
		if c.name == args[0] {
			return c.run(ctx, args[1:], getenv, stdout, stderr)
		}
	}
	fmt.Fprintf(stderr, "storeline: unknown command %q\n", args[0])
	usage(stderr)
	return exitUsage
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "usage: storeline <command> [flags]\n\ncommands:")
	for _, c := range commands() {
		fmt.Fprintf(w, "  %-8s %s\n", c.name, c.summary)
	}
	fmt.Fprintln(w, "\nRun 'storeline <command> -h' for a command's flags.")
}
