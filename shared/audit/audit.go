// Package audit is the event log auditors query: every message of every stage, once (idempotent
// on message id), chained by hash per chain so that tampering is detectable. A record's chain is
// its component id ("<env>/<type>/<nickname>") when it concerns one component, else
// "change/<correlation id>". Within a chain records are numbered from 1; each record's Hash is
// SHA-256 over its PrevHash and its canonical content (see Record.ComputeHash), so editing,
// removing or reordering any record breaks Verify from that point on.
// Implementations: embedded (SQLite) and DynamoDB; one conformance suite (audittest).
package audit

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
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
}

// ComputeHash is the chain hash of r given the previous record's hash.
func (r Record) ComputeHash(prev string) string {
	h := sha256.New()
	h.Write([]byte(prev))
	h.Write([]byte{0})
	c := r
	c.Seq, c.PrevHash, c.Hash = 0, "", ""
	b, _ := json.Marshal(c)
	h.Write(b)
	return hex.EncodeToString(h.Sum(nil))
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
}

// ErrTampered is returned (wrapped) by Verify when a chain does not hash.
var ErrTampered = errors.New("audit: chain does not verify")

// Log is the audit log.
type Log interface {
	// Append adds records not yet present (by MessageID), assigning Seq, PrevHash and Hash
	// within each record's chain. Returns how many were new.
	Append(ctx context.Context, recs ...Record) (int, error)
	Query(ctx context.Context, q Query) ([]Record, error)
	// Verify recomputes a chain's hashes; an error matching ErrTampered names the first bad Seq.
	Verify(ctx context.Context, chain string) error
	// Chains lists every chain name.
	Chains(ctx context.Context) ([]string, error)
}
