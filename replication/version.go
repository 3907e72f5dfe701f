package replication

import (
	"fmt"

	"github.com/storeline/storeline"
)

// ProtocolVersion is the version of the wire protocol this build speaks.
// Both ends accept ProtocolVersion and ProtocolVersion-1, and the server
// answers in the version the request carries, so a shop may lag head
// office by one release (head office is upgraded first); anything else
// is refused with an error that names both versions.
//
// History (each change dated; a version is never reused):
//
//	1  2026-11-28  push of (epoch, seq) batches with postings, answered with
//	               the epoch's high-water mark or a gap; pull of master data
//	               and others' events after a uint64 cursor, long poll, resync
//	               with a paged snapshot.
//	2  2026-11-28  pull pages also carry rejections and, after a restore, the
//	               shop's own acknowledged events it lacks (PullRequest.Own);
//	               push answers carry every epoch's mark. Fields were only
//	               added, so a version-1 peer decodes version-2 messages.
//	3  2026-11-29  central's incarnation (replaced when the cluster is
//	               restored from a backup) in pull answers, and the one the
//	               shop's cursor belongs to in pull requests: a mismatch is
//	               answered with a resync. Pull answers carry the store's
//	               marks, so an idle shop learns central lost its span.
//	               Fields were only added; absent means unknown, and a
//	               version-2 peer ignores them.
const ProtocolVersion uint16 = 3

// MinProtocolVersion is the oldest version accepted: N-1.
const MinProtocolVersion = ProtocolVersion - 1

// CheckVersion returns an Invalid error naming field "v" unless v is a
// version this build speaks.
func CheckVersion(v uint16) error {
	switch {
	case v < MinProtocolVersion:
		return &storeline.Error{Op: "replication", Kind: storeline.Invalid, Field: "v",
			Err: fmt.Errorf("protocol version %d is older than %d, the oldest this build speaks (it speaks %d and %d): upgrade the node", v, MinProtocolVersion, MinProtocolVersion, ProtocolVersion)}
	case v > ProtocolVersion:
		return &storeline.Error{Op: "replication", Kind: storeline.Invalid, Field: "v",
			Err: fmt.Errorf("protocol version %d is newer than %d, the newest this build speaks: upgrade central first", v, ProtocolVersion)}
	}
	return nil
}
