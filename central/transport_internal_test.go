package central

import (
	"errors"
	"net"
	"testing"
	"time"

	"github.com/hashicorp/raft"
)

// TestRaftTransportRefusesPipelines keeps replication off hashicorp/raft's
// pipeline path, which can deadlock a leader (see unpipelined).
func TestRaftTransportRefusesPipelines(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	sl, err := newStreamLayer(ln, "")
	if err != nil {
		t.Fatal(err)
	}
	var n Node
	n.tr = unpipelined{raft.NewNetworkTransport(sl, 1, time.Second, nil)}
	defer n.tr.Close()
	var tr raft.Transport = n.tr // what Open hands raft.NewRaft
	if _, err := tr.AppendEntriesPipeline("c2", "127.0.0.1:1"); !errors.Is(err, raft.ErrPipelineReplicationNotSupported) {
		t.Fatalf("AppendEntriesPipeline: %v; want ErrPipelineReplicationNotSupported", err)
	}
}
