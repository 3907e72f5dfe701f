package central

// RaftStoreHalts returns how many of Raft's goroutines the node's log
// store ended instead of returning a failure Raft panics on (logstore.go).
func (n *Node) RaftStoreHalts() uint64 { return n.raftHalts.Load() }
