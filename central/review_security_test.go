package central_test

import (
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/raft"

	"github.com/storeline/storeline"
)

// TestSecurityViewerSeesNoPINHash: a seller's PIN hash is what an offline
// guess needs, and a PIN is 4 to 12 digits, so whoever holds the hash holds
// the PIN (PBKDF2 at a few milliseconds a guess runs through every 4-digit
// PIN in well under a minute). The head-office API never answers it: not
// to a viewer key reading sellers, the feed or a snapshot, nor in the
// answer to an admin's write.
func TestSecurityViewerSeesNoPINHash(t *testing.T) {
	n := singleNode(t)
	a := n.APIAddr()
	seed(t, a, 1)
	put := mustOK(t, apiDo(t, "PUT", a, "/v1/sellers/anna", adminKey,
		map[string]any{"name": "Anna", "role": "cashier", "pin": "4821", "stores": []string{"s1"}}, nil))
	reset := mustOK(t, apiDo(t, "POST", a, "/v1/sellers/anna/pin", adminKey, map[string]any{"pin": "7305"}, nil))
	var s storeline.Seller
	if err := n.Replica().GetMaster(storeline.KindSeller, "anna", &s); err != nil || !storeline.CheckPIN(s.PINHash, "7305") {
		t.Fatalf("seller = %+v, %v", s, err)
	}
	hashPart := s.PINHash[strings.LastIndex(s.PINHash, "$")+1:]
	answers := map[string]response{
		"PUT /v1/sellers/anna (admin)":          put,
		"POST /v1/sellers/anna/pin (admin)":     reset,
		"GET /v1/sellers/anna (viewer)":         apiDo(t, "GET", a, "/v1/sellers/anna", viewerKey, nil, nil),
		"GET /v1/sellers (viewer)":              apiDo(t, "GET", a, "/v1/sellers", viewerKey, nil, nil),
		"GET /v1/changes?store=s1 (viewer)":     apiDo(t, "GET", a, "/v1/changes?store=s1&limit=100", viewerKey, nil, nil),
		"GET /v1/snapshot?store=s1 (viewer)":    apiDo(t, "GET", a, "/v1/snapshot?store=s1&limit=100", viewerKey, nil, nil),
		"GET /v1/changes?store=s1 (admin)":      apiDo(t, "GET", a, "/v1/changes?store=s1&limit=100", adminKey, nil, nil),
		"GET /v1/sellers/anna?consistency=... ": apiDo(t, "GET", a, "/v1/sellers/anna?consistency=linearizable", viewerKey, nil, nil),
	}
	for what, r := range answers {
		if r.status != 200 {
			t.Errorf("%s = %d %s", what, r.status, r.body)
			continue
		}
		if strings.Contains(string(r.body), "pin_hash") || strings.Contains(string(r.body), hashPart) {
			t.Errorf("%s answers the seller's PIN hash: %s", what, r.body)
		}
	}
	// What the leak is worth: the PIN back from the hash a viewer read.
	got := apiDo(t, "GET", a, "/v1/sellers/anna", viewerKey, nil, nil).json(t)
	if h, _ := got["pin_hash"].(string); h != "" {
		for i := 0; i < 10000; i++ {
			if pin := fmt.Sprintf("%04d", i); storeline.CheckPIN(h, pin) {
				t.Errorf("a viewer key recovered seller anna's PIN %s from GET /v1/sellers/anna", pin)
				break
			}
		}
	}
	// The shops still get the hash through replication (their tills log
	// sellers in offline): the record itself keeps it.
	if err := n.Replica().GetMaster(storeline.KindSeller, "anna", &s); err != nil || !storeline.CheckPIN(s.PINHash, "7305") {
		t.Fatalf("after the reads, seller = %+v, %v", s, err)
	}
}

// TestSecurityRaftPortNeedsClusterSecret: the Raft port takes only peers
// holding the cluster secret. Without it, anyone who reaches the port
// plays a leader of a higher term: the node steps down and appends what
// it is sent (AppendEntries; InstallSnapshot replaces its whole state),
// past API keys, roles and the forwarding secret.
func TestSecurityRaftPortNeedsClusterSecret(t *testing.T) {
	n := singleNode(t)
	seed(t, n.APIAddr(), 1)
	cl := mustOK(t, apiDo(t, "GET", n.APIAddr(), "/v1/cluster", viewerKey, nil, nil)).json(t)
	me := cl["members"].([]any)[0].(map[string]any)
	term, _ := me["term"].(float64)
	last, _ := me["commit_index"].(float64)

	tr, err := raft.NewTCPTransport("127.0.0.1:0", nil, 1, 2*time.Second, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	self := []byte(tr.LocalAddr())
	req := &raft.AppendEntriesRequest{
		RPCHeader: raft.RPCHeader{ProtocolVersion: raft.ProtocolVersionMax, ID: []byte("intruder"), Addr: self},
		Term:      uint64(term) + 100, Leader: self,
		PrevLogEntry: uint64(last), PrevLogTerm: uint64(term),
		Entries: []*raft.Log{{Index: uint64(last) + 1, Term: uint64(term) + 100, Type: raft.LogNoop}},
	}
	var resp raft.AppendEntriesResponse
	err = tr.AppendEntries("intruder", raft.ServerAddress(n.RaftAddr()), req, &resp)
	if err == nil && resp.Success {
		t.Errorf("an AppendEntries of term %d from a peer without the cluster secret was accepted (last log %d); the node is leader: %v",
			req.Term, resp.LastLog, n.IsLeader())
	}
	// The node keeps serving, as leader of its own term.
	waitFor(t, "leader again", 10*time.Second, n.IsLeader)
	mustOK(t, apiDo(t, "PUT", n.APIAddr(), "/v1/groups/drinks", adminKey, map[string]any{"name": "Drinks"}, nil))
}
