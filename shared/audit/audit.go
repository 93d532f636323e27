// Package audit is the event log auditors query: every message of every stage, once (idempotent
// on message id), chained by hash per chain so that tampering is detectable. A record's chain is
// its component id ("<env>/<type>/<nickname>") when it concerns one component, else
// "change/<correlation id>". Within a chain records are numbered from 1; each record's Hash is
// SHA-256 over its PrevHash and its canonical content (see Record.ComputeHash), and each chain
// has a stored head (its last seq and hash), written with its records.
//
// What the chain alone proves, and what it needs a checkpoint for:
//   - Editing, inserting, reordering or removing a record breaks a link (ChainCheck): Verify
//     names the chain and the first seq that does not check out. Removing the newest records
//     is caught by the stored head.
//   - Removing the newest records and rolling the head back, removing a whole chain, or
//     rewriting a chain consistently from scratch leaves a log that checks out on its own. A
//     Checkpoint (the heads of every chain, hashed into one Digest, kept in the log and its
//     digest written to a Witness outside it) catches those: VerifyLog with Against checks that
//     every chain of the checkpoint still exists, at least that long, with the same hash there.
//
// Implementations: embedded (SQLite) and DynamoDB; one conformance suite (audittest).
package audit

import (
	"context"
	"encoding/json"
	"errors"
	"time"
)

// Record is one audited message.
type Record struct {
	MessageID     string          `json:"message_id"`
	Type          string          `json:"type"`
	Version       int             `json:"version"`
	Env           string          `json:"env"`
	Chain         string          `json:"chain"`
	Component     string          `json:"component,omitempty"`
	DeploymentID  string          `json:"deployment_id,omitempty"`
	CorrelationID string          `json:"correlation_id"`
	CausationID   string          `json:"causation_id,omitempty"`
	ActorKind     string          `json:"actor_kind"`
	Actor         string          `json:"actor"`
	OccurredAt    time.Time       `json:"occurred_at"`
	Body          json.RawMessage `json:"body"` // the whole envelope, as received
	// Set by Append:
	Seq      int64  `json:"seq"`
	PrevHash string `json:"prev_hash"`
	Hash     string `json:"hash"`
	// Appended is the record's place in the order the log appended records (set by Append, read
	// back by Query): a larger one was appended later. It is the log's own key, not part of the
	// record's content or hash: the embedded log counts appends; the DynamoDB log stamps the
	// appender's clock, in nanoseconds. 0: not known (a record stored before it was kept).
	Appended int64 `json:"-"`
}

// ComputeHash is the chain hash of r given the previous record's hash.
func (r Record) ComputeHash(prev string) string {
	b, _ := content(r)
	return chainHash(prev, b)
}

// Head is where a chain ends: the seq and hash of its last record.
type Head struct {
	Chain string `json:"chain"`
	Seq   int64  `json:"seq"`
	Hash  string `json:"hash"`
}

// Query selects records; every set field must match. Results are ordered by OccurredAt, then
// chain and Seq.
type Query struct {
	Component    string
	DeploymentID string
	Correlation  string
	Actor        string
	Since, Until time.Time // zero = unbounded
	Limit        int       // 0 = no limit
	// AppendedUpTo, when set, leaves out the records appended after it (Record.Appended): the
	// records as they were at a Horizon. Records whose Appended is not known are kept.
	AppendedUpTo int64
}

// AppendPos is a position in append order: the records with (Appended, Chain, Seq) after it.
// With Through, every record with Appended up to Appended is behind it.
type AppendPos struct {
	Appended int64
	Chain    string
	Seq      int64
	Through  bool
}

// Before reports whether r comes after p in append order.
func (p AppendPos) Before(r Record) bool {
	switch {
	case r.Appended != p.Appended || p.Through:
		return r.Appended > p.Appended
	case r.Chain != p.Chain:
		return r.Chain > p.Chain
	}
	return r.Seq > p.Seq
}

// ErrNotFound is returned (wrapped) by RecordAt when no record is stored at that seq, and by
// LoadCheckpoint when the log holds no checkpoint with that digest.
var ErrNotFound = errors.New("audit: not found")

// Log is the audit log.
type Log interface {
	// Append adds records not yet present (by MessageID), assigning Seq, PrevHash and Hash
	// within each record's chain and moving the chain's head. Returns how many were new.
	Append(ctx context.Context, recs ...Record) (int, error)
	Query(ctx context.Context, q Query) ([]Record, error)
	// Verify checks a chain's stored records and head (ChainCheck); a *TamperError names the
	// first broken link. A chain with no records and no head verifies.
	Verify(ctx context.Context, chain string) error
	// Chains lists every chain name, sorted.
	Chains(ctx context.Context) ([]string, error)
	// Heads lists the stored head of every chain Chains lists, sorted by chain; a chain whose
	// head is missing is listed with Seq 0 and no Hash.
	Heads(ctx context.Context) ([]Head, error)
	// RecordAt returns the record stored at seq of chain, as stored (not checked); an error
	// matching ErrNotFound when there is none.
	RecordAt(ctx context.Context, chain string, seq int64) (Record, error)
	AppendOrder
}

// AppendOrder lists records in the order the log appended them, which Page follows so that a
// record appended late — with an occurrence time before records already read — is not missed.
type AppendOrder interface {
	// Horizon is an append key h such that every record Query and QueryAppended will ever
	// return with Appended <= h can be read now: a record appended later, or still being
	// appended, gets a larger one. (The embedded log: its last append, exactly. The DynamoDB
	// log: its clock less AppendSettle, which is assumed to cover the appenders' clock skew, a
	// transaction's time in flight and an index's lag.)
	Horizon(ctx context.Context) (int64, error)
	// QueryAppended returns the records matching q's fields, Since and Until (q.AppendedUpTo is
	// ignored) that come after `after` in append order and have Appended <= upTo, ordered by
	// Appended, chain, Seq; at most q.Limit (0: all).
	QueryAppended(ctx context.Context, q Query, after AppendPos, upTo int64) ([]Record, error)
}
