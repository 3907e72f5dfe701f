package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
)

// A peer is a server process this command started and stops by its PID.
type peerProc struct {
	name string
	cmd  *exec.Cmd
	done chan error
}

func startProc(name string, cmd *exec.Cmd, log *os.File) (*peerProc, error) {
	cmd.Stdout, cmd.Stderr = log, log
	err := cmd.Start()
	log.Close() // the child has its own descriptor
	if err != nil {
		return nil, fmt.Errorf("bench: start %s: %w", name, err)
	}
	p := &peerProc{name: name, cmd: cmd, done: make(chan error, 1)}
	go func() { p.done <- cmd.Wait() }()
	return p, nil
}

// stop sends sig to the process by its PID and waits up to grace before
// killing it.
func (p *peerProc) stop(sig syscall.Signal, grace time.Duration) error {
	if err := syscall.Kill(p.cmd.Process.Pid, sig); err != nil && !errors.Is(err, syscall.ESRCH) {
		return fmt.Errorf("bench: signal %s (pid %d): %w", p.name, p.cmd.Process.Pid, err)
	}
	select {
	case <-p.done:
		return nil
	case <-time.After(grace):
		syscall.Kill(p.cmd.Process.Pid, syscall.SIGKILL)
		<-p.done
		return fmt.Errorf("bench: %s (pid %d) did not stop in %v; killed", p.name, p.cmd.Process.Pid, grace)
	}
}

// exited reports a process that ended early.
func (p *peerProc) exited() error {
	select {
	case err := <-p.done:
		p.done <- err
		return fmt.Errorf("bench: %s exited: %v", p.name, err)
	default:
		return nil
	}
}

// freePorts returns n distinct free TCP ports on 127.0.0.1.
func freePorts(n int) ([]int, error) {
	var lns []net.Listener
	defer func() {
		for _, ln := range lns {
			ln.Close()
		}
	}()
	var ports []int
	for range n {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		lns = append(lns, ln)
		ports = append(ports, ln.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

// waitUntil polls ok until it returns nil, the process exits, or the
// deadline passes.
func waitUntil(ctx context.Context, what string, d time.Duration, procs []*peerProc, ok func(context.Context) error) error {
	deadline := time.Now().Add(d)
	for {
		err := ok(ctx)
		if err == nil {
			return nil
		}
		for _, p := range procs {
			if e := p.exited(); e != nil {
				return e
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("bench: %s not ready after %v: %w", what, d, err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond): // polling a server's readiness with a deadline
		}
	}
}

// postgresServer is a throwaway PostgreSQL cluster on a loopback port.
type postgresServer struct {
	dir  string
	keep bool
	proc *peerProc
	DSN  string
}

// postgresBin returns the newest /usr/lib/postgresql/*/bin.
func postgresBin() (string, error) {
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	if len(dirs) == 0 {
		return "", errors.New("bench: no /usr/lib/postgresql/*/bin: install postgresql (make bench-peers does)")
	}
	slices.SortFunc(dirs, func(a, b string) int {
		va, _ := strconv.Atoi(filepath.Base(filepath.Dir(a)))
		vb, _ := strconv.Atoi(filepath.Base(filepath.Dir(b)))
		return va - vb
	})
	return dirs[len(dirs)-1], nil
}

// startPostgres runs initdb and postgres in a new directory under
// $TMPDIR (removed by Stop unless keep): as root both run as the postgres
// user (initdb refuses root), which must reach the directory, and a
// caller's scratch directory may sit under one only root can enter.
// Durability settings are left at their defaults (fsync,
// synchronous_commit, full_page_writes on); memory and connection limits
// are raised for the benchmark.
func startPostgres(ctx context.Context, keep bool) (*postgresServer, error) {
	bin, err := postgresBin()
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "storeline-bench-pg-")
	if err != nil {
		return nil, err
	}
	s, err := startPostgresIn(ctx, bin, dir, keep)
	if err != nil && !keep {
		os.RemoveAll(dir)
	}
	return s, err
}

func startPostgresIn(ctx context.Context, bin, dir string, keep bool) (*postgresServer, error) {
	if err := os.Chmod(dir, 0o755); err != nil {
		return nil, err
	}
	ports, err := freePorts(1)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(filepath.Join(dir, "run"), 0o755); err != nil {
		return nil, err
	}
	var cred *syscall.Credential
	if os.Geteuid() == 0 {
		u, err := user.Lookup("postgres")
		if err != nil {
			return nil, fmt.Errorf("bench: running as root needs the postgres user (from the postgresql package): %w", err)
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		cred = &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}
		for _, p := range []string{dir, filepath.Join(dir, "run")} {
			if err := os.Chown(p, uid, gid); err != nil {
				return nil, err
			}
		}
	}
	log, err := os.Create(filepath.Join(dir, "postgres.log"))
	if err != nil {
		return nil, err
	}
	if cred != nil {
		log.Chown(int(cred.Uid), int(cred.Gid))
	}
	data := filepath.Join(dir, "data")
	initdb := exec.CommandContext(ctx, filepath.Join(bin, "initdb"), "-D", data, "-A", "trust", "-U", "postgres", "-E", "UTF8")
	initdb.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
	if out, err := initdb.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("bench: initdb: %w\n%s", err, out)
	}
	cmd := exec.Command(filepath.Join(bin, "postgres"), "-D", data, "-p", strconv.Itoa(ports[0]),
		"-c", "listen_addresses=127.0.0.1", "-k", filepath.Join(dir, "run"),
		"-c", "shared_buffers=256MB", "-c", "max_wal_size=4GB", "-c", "max_connections=200")
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
	proc, err := startProc("postgres", cmd, log)
	if err != nil {
		return nil, err
	}
	s := &postgresServer{dir: dir, keep: keep, proc: proc}
	base := fmt.Sprintf("postgres://postgres@127.0.0.1:%d/%%s?sslmode=disable", ports[0])
	err = waitUntil(ctx, "postgres", 60*time.Second, []*peerProc{proc}, func(ctx context.Context) error {
		conn, err := pgx.Connect(ctx, fmt.Sprintf(base, "postgres"))
		if err != nil {
			return err
		}
		defer conn.Close(ctx)
		_, err = conn.Exec(ctx, "CREATE DATABASE bench")
		return err
	})
	if err != nil {
		s.proc.stop(syscall.SIGINT, 60*time.Second)
		return nil, err
	}
	s.DSN = fmt.Sprintf(base, "bench")
	return s, nil
}

// Stop sends SIGINT (PostgreSQL's fast shutdown) to the postmaster's PID,
// then removes its directory unless kept.
func (s *postgresServer) Stop() error {
	err := s.proc.stop(syscall.SIGINT, 60*time.Second)
	if !s.keep {
		os.RemoveAll(s.dir)
	}
	return err
}

// etcdCluster is a throwaway 3-member etcd cluster on loopback.
type etcdCluster struct {
	procs     []*peerProc
	Endpoints []string
}

// startEtcd starts n etcd members in dir with their defaults (fsync on)
// and an 8 GiB backend quota so a run never hits the 2 GiB default.
func startEtcd(ctx context.Context, dir string, n int) (*etcdCluster, error) {
	bin, err := exec.LookPath("etcd")
	if err != nil {
		return nil, errors.New("bench: no etcd on PATH: install etcd-server (make bench-peers does)")
	}
	ports, err := freePorts(2 * n)
	if err != nil {
		return nil, err
	}
	var initial []string
	for i := range n {
		initial = append(initial, fmt.Sprintf("e%d=http://127.0.0.1:%d", i, ports[2*i+1]))
	}
	c := &etcdCluster{}
	for i := range n {
		client := fmt.Sprintf("http://127.0.0.1:%d", ports[2*i])
		peer := fmt.Sprintf("http://127.0.0.1:%d", ports[2*i+1])
		log, err := os.Create(filepath.Join(dir, fmt.Sprintf("etcd%d.log", i)))
		if err != nil {
			c.Stop()
			return nil, err
		}
		cmd := exec.Command(bin, "--name", fmt.Sprintf("e%d", i), "--data-dir", filepath.Join(dir, fmt.Sprintf("e%d", i)),
			"--listen-client-urls", client, "--advertise-client-urls", client,
			"--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
			"--initial-cluster", strings.Join(initial, ","), "--initial-cluster-state", "new",
			"--initial-cluster-token", "storeline-bench", "--quota-backend-bytes", strconv.Itoa(8<<30))
		p, err := startProc(fmt.Sprintf("etcd member %d", i), cmd, log)
		if err != nil {
			c.Stop()
			return nil, err
		}
		c.procs = append(c.procs, p)
		c.Endpoints = append(c.Endpoints, client)
	}
	err = waitUntil(ctx, "etcd", 60*time.Second, c.procs, func(ctx context.Context) error {
		cl, err := clientv3.New(clientv3.Config{Endpoints: c.Endpoints, DialTimeout: 2 * time.Second, Logger: zap.NewNop()})
		if err != nil {
			return err
		}
		defer cl.Close()
		for _, ep := range c.Endpoints {
			sctx, cancel := context.WithTimeout(ctx, 2*time.Second)
			st, err := cl.Status(sctx, ep)
			cancel()
			if err != nil {
				return err
			}
			if st.Leader == 0 {
				return fmt.Errorf("%s has no leader yet", ep)
			}
		}
		return nil
	})
	if err != nil {
		c.Stop()
		return nil, err
	}
	return c, nil
}

// Stop sends SIGTERM to each member by its PID.
func (c *etcdCluster) Stop() error {
	var errs []error
	for _, p := range c.procs {
		errs = append(errs, p.stop(syscall.SIGTERM, 30*time.Second))
	}
	return errors.Join(errs...)
}
