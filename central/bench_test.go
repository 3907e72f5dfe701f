package central_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"sort"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/raft"
	"github.com/vmihailenco/msgpack/v5"

	"github.com/storeline/storeline"
	"github.com/storeline/storeline/central"
)

// benchTimers are DefaultConfig's Raft timers: the tests' scaled-down
// ones lose leadership on a loaded 2-core machine.
func benchTimers(c *central.Config) {
	d := central.DefaultConfig("")
	c.HeartbeatTimeout, c.ElectionTimeout, c.LeaderLeaseTimeout, c.CommitTimeout = d.HeartbeatTimeout, d.ElectionTimeout, d.LeaderLeaseTimeout, d.CommitTimeout
	c.ApplyTimeout, c.ForwardTimeout = 30*time.Second, 30*time.Second
}

// benchCluster is a 3-node cluster with benchTimers.
func benchCluster(b *testing.B) *cluster {
	b.Helper()
	c := startClusterWith(b, 3, benchTimers)
	seed(b, c.waitLeader().APIAddr(), 0)
	return c
}

// groupPayload is one master.put command with one group record.
func groupPayload(b *testing.B, id string) []byte {
	b.Helper()
	rec := &storeline.Group{ID: storeline.GroupID(id), Name: "G", Parent: "food"}
	data, _ := msgpack.Marshal(rec)
	p, err := msgpack.Marshal(map[string]any{"r": []any{map[string]any{"k": rec.MasterKind(), "d": data}}})
	if err != nil {
		b.Fatal(err)
	}
	return p
}

// BenchmarkClusterCommit measures committed master-data changes per second
// on a 3-node loopback cluster through the leader's Submit: one client
// ("single") and 64 concurrent clients ("parallel64", where BatchApplyCh
// batches entries).
func BenchmarkClusterCommit(b *testing.B) {
	for _, par := range []int{1, 64} {
		name := "single"
		if par > 1 {
			name = fmt.Sprintf("parallel%d", par)
		}
		b.Run(name, func(b *testing.B) {
			c := benchCluster(b)
			l := c.waitLeader()
			var seq atomic.Int64
			b.ResetTimer()
			var retries atomic.Int64
			runClients(b, par, func() {
				id := fmt.Sprintf("g%d", seq.Add(1))
				p := groupPayload(b, id)
				for attempt := 0; ; attempt++ {
					// Any node serves: a node that lost leadership forwards.
					res, err := l.Submit(context.Background(), central.OpMasterPut, id, p)
					if err == nil && res.Err() == nil {
						return
					}
					if storeline.KindOf(err) != storeline.Unavailable || attempt == 50 {
						b.Errorf("submit: %v %v", err, res)
						return
					}
					retries.Add(1) // same key: safe whatever the outcome was
					time.Sleep(20 * time.Millisecond)
				}
			})
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "changes/s")
			b.ReportMetric(float64(retries.Load()), "retries")
		})
	}
}

// runClients runs fn b.N times from par goroutines.
func runClients(b *testing.B, par int, fn func()) {
	var next atomic.Int64
	done := make(chan struct{})
	for i := 0; i < par; i++ {
		go func() {
			defer func() { done <- struct{}{} }()
			for next.Add(1) <= int64(b.N) {
				fn()
			}
		}()
	}
	for i := 0; i < par; i++ {
		<-done
	}
}

// nopFSM is the raw harness's state machine: it applies nothing.
type nopFSM struct{}

func (nopFSM) Apply(*raft.Log) interface{}             { return nil }
func (nopFSM) ApplyBatch(ls []*raft.Log) []interface{} { return make([]interface{}, len(ls)) }
func (nopFSM) Snapshot() (raft.FSMSnapshot, error)     { return nopSnap{}, nil }
func (nopFSM) Restore(rc io.ReadCloser) error          { return rc.Close() }

type nopSnap struct{}

func (nopSnap) Persist(s raft.SnapshotSink) error { return s.Close() }
func (nopSnap) Release()                          {}

// BenchmarkRawRaft is hashicorp/raft alone with central's settings
// (3 voters over loopback TCP, BatchApplyCh, MaxAppendEntries 1024, the
// same timers, the same Badger log store) and a state machine that does
// nothing: the ceiling central's FSM, envelope and idempotency work sits
// under.
func BenchmarkRawRaft(b *testing.B) {
	for _, par := range []int{1, 64} {
		name := "single"
		if par > 1 {
			name = fmt.Sprintf("parallel%d", par)
		}
		b.Run(name, func(b *testing.B) {
			rs := rawCluster(b)
			var leader *raft.Raft
			waitFor(b, "raw leader", 10*time.Second, func() bool {
				for _, r := range rs {
					if r.State() == raft.Leader {
						leader = r
						return true
					}
				}
				return false
			})
			payload := groupPayload(b, "g")
			b.ResetTimer()
			runClients(b, par, func() {
				if err := leader.Apply(payload, 5*time.Second).Error(); err != nil {
					b.Errorf("apply: %v", err)
				}
			})
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "changes/s")
		})
	}
}

func rawCluster(b *testing.B) []*raft.Raft {
	b.Helper()
	tc := testConfig(b, "x", b.TempDir())
	benchTimers(&tc)
	var rs []*raft.Raft
	var servers []raft.Server
	var trs []*raft.NetworkTransport
	for i := 0; i < 3; i++ {
		tr, err := raft.NewTCPTransport("127.0.0.1:0", nil, 3, 10*time.Second, io.Discard)
		if err != nil {
			b.Fatal(err)
		}
		trs = append(trs, tr)
		servers = append(servers, raft.Server{ID: raft.ServerID(fmt.Sprint(i)), Address: tr.LocalAddr()})
	}
	for i := 0; i < 3; i++ {
		rc := raft.DefaultConfig()
		rc.LocalID = servers[i].ID
		rc.HeartbeatTimeout, rc.ElectionTimeout, rc.LeaderLeaseTimeout = tc.HeartbeatTimeout, tc.ElectionTimeout, tc.LeaderLeaseTimeout
		rc.CommitTimeout, rc.MaxAppendEntries, rc.BatchApplyCh = tc.CommitTimeout, tc.MaxAppendEntries, true
		rc.LogOutput, rc.NoLegacyTelemetry = io.Discard, true
		ls := central.NewBadgerLogStore(b, filepath.Join(b.TempDir(), "raft"))
		r, err := raft.NewRaft(rc, nopFSM{}, ls, ls, raft.NewInmemSnapshotStore(), trs[i])
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { r.Shutdown().Error(); trs[i].Close() })
		rs = append(rs, r)
	}
	if err := rs[0].BootstrapCluster(raft.Configuration{Servers: servers}).Error(); err != nil {
		b.Fatal(err)
	}
	return rs
}

// BenchmarkImport100k imports 100,000 items through the head-office API
// of a 3-node cluster (split into entries of 2,000).
func BenchmarkImport100k(b *testing.B) {
	c := benchCluster(b)
	l := c.waitLeader()
	for i := 0; i < b.N; i++ {
		items := make([]any, 100000)
		for j := range items {
			m := item(j)
			m["id"] = fmt.Sprintf("b%d-%06d", i, j)
			m["sku"] = fmt.Sprintf("B%d-%06d", i, j)
			items[j] = m
		}
		benchDo(b, "POST", l.APIAddr(), "/v1/import", map[string]any{"items": items})
	}
	b.ReportMetric(b.Elapsed().Seconds()/float64(b.N), "s/import")
}

// BenchmarkFollowerWrite measures one client's writes (PUT a group)
// through a follower's head-office API, forwarded to the leader; it
// reports p50 and p99.
func BenchmarkFollowerWrite(b *testing.B) {
	c := benchCluster(b)
	f := c.follower()
	lat := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		start := time.Now()
		benchDo(b, "PUT", f.APIAddr(), fmt.Sprintf("/v1/groups/f%d", i), map[string]any{"name": "F", "parent": "food"})
		lat = append(lat, time.Since(start))
	}
	b.StopTimer()
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(lat[min(len(lat)-1, len(lat)*99/100)].Microseconds())/1000, "p99-ms")
}

// benchDo sends one JSON request without the spec checks of apiDo, so
// they are not timed.
func benchDo(b *testing.B, method, addr, path string, body any) {
	enc, _ := json.Marshal(body)
	req, _ := http.NewRequest(method, "http://"+addr+path, bytes.NewReader(enc))
	req.Header.Set("Authorization", "Bearer "+adminKey)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		b.Fatal(err)
	}
	rb, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 {
		b.Fatalf("%s %s: %d %s", method, path, resp.StatusCode, rb)
	}
}
