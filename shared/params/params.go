// Package params is Karma's view of a parameter store (AWS SSM Parameter Store, or the embedded
// SQLite stand-in). Components publish their resolved config to <prefix>/<type>/<nickname>/config
// and Terraform's outputs land at <prefix>/<type>/<nickname>/runtime; <prefix>/environment binds an
// account to an environment.
//
// Contract shared by every implementation (one conformance suite, paramstest, checks it):
//   - Put with a value equal to the current one is a no-op that returns the current version
//     (Changed=false): republishing an unchanged config creates no new version and no event.
//   - Versions start at 1 and grow by one per change, per name.
//   - GetByPath is recursive, returns every parameter below the path (pagination is the
//     implementation's business), sorted by name.
//   - Get of an unknown name returns an error matching ErrNotFound (errors.Is).
//   - SecureString values are returned as stored; callers must not copy them into graphs, logs
//     or audit records (see Redacted).
package params

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"strings"
	"time"
	"unicode/utf8"
)

// ErrNotFound is returned (wrapped) when a parameter does not exist.
var ErrNotFound = errors.New("params: parameter not found")

// Parameter types, as SSM names them.
const (
	TypeString       = "String"
	TypeStringList   = "StringList"
	TypeSecureString = "SecureString"
)

// Tiers, as SSM names them. Values above StandardTierLimit bytes need TierAdvanced.
const (
	TierStandard = "Standard"
	TierAdvanced = "Advanced"
)

// Parameter is one stored parameter at its current version.
type Parameter struct {
	Name             string    `json:"name"`
	Value            string    `json:"value"`
	Type             string    `json:"type"`
	Version          int64     `json:"version"`
	LastModified     time.Time `json:"last_modified"`
	LastModifiedUser string    `json:"last_modified_user,omitempty"`
	Description      string    `json:"description,omitempty"`
}

// Redacted returns the value safe to log or record: SecureString values are replaced.
func (p Parameter) Redacted() string {
	if p.Type == TypeSecureString {
		return "***redacted***"
	}
	return p.Value
}

// PutInput is one write.
type PutInput struct {
	Name  string
	Value string
	// Type defaults to TypeString.
	Type string
	// Tier defaults to TierStandard, or TierAdvanced when len(Value) > StandardTierLimit.
	Tier string
	// Description carries provenance, e.g. "karma: commit=<sha> file=<path>" (at most 1024 chars).
	Description string
	// User is recorded as LastModifiedUser by the embedded store (SSM records the caller's ARN).
	User string
}

// PutResult says what a Put did.
type PutResult struct {
	Version int64
	Changed bool
}

// Store is the parameter store as Karma uses it.
type Store interface {
	Get(ctx context.Context, name string) (Parameter, error)
	GetByPath(ctx context.Context, path string) ([]Parameter, error)
	Put(ctx context.Context, in PutInput) (PutResult, error)
	Delete(ctx context.Context, name string) error
}

// TierFor returns the tier a value of this size needs.
func TierFor(value string) string {
	if len(value) > StandardTierLimit {
		return TierAdvanced
	}
	return TierStandard
}

// Historian is implemented by stores that keep every version (both do). History returns a
// parameter's versions, oldest first, each with LastModifiedUser and Description as the store
// recorded them — the only honest answer to "who changed it" for a change made outside Karma.
type Historian interface {
	History(ctx context.Context, name string) ([]Parameter, error)
}

// Provenance is the description Karma writes with a value it publishes: "karma: <what>
// sha256=<first 16 hex digits of the value's SHA-256>". The hash ties the description to the
// value: Parameter Store keeps a description when someone else later overwrites the value
// without one, and the hash then no longer matches (IsKarmaWrite is false). A description
// longer than MaxDescription is cut in what, at a character boundary, never in the hash.
func Provenance(what, value string) string {
	head, tail := "karma: "+what, " sha256="+valueHash(value)
	if len(head)+len(tail) > MaxDescription {
		n := MaxDescription - len(tail)
		for n > 0 && !utf8.RuneStart(head[n]) {
			n--
		}
		head = head[:n]
	}
	return head + tail
}

// IsKarmaWrite reports whether a parameter version was written by Karma: its description is
// Karma's provenance for exactly this value. Such writes are consequences of a deployment already
// under way, not new changes.
func IsKarmaWrite(description, value string) bool {
	h, ok := ProvenanceHash(description)
	return ok && h == valueHash(value)
}

// IsKarmaVersion is IsKarmaWrite of version cur, knowing the version before it (nil: none). A
// write that gives no description keeps the previous version's, so a value reverted by hand to
// one Karma wrote — Karma's v5 R, someone's v6 X, someone's v7 R — carries Karma's description
// for exactly that value and would pass for Karma's own write, and its consequence would never
// run. A description carried over from the version before, across a change of value, is not a
// write of Karma's: Karma gives its description with every value it writes.
func IsKarmaVersion(cur Parameter, prev *Parameter) bool {
	if !IsKarmaWrite(cur.Description, cur.Value) {
		return false
	}
	return prev == nil || prev.Description != cur.Description || valueHash(prev.Value) == valueHash(cur.Value)
}

// ProvenanceHash returns the value hash a Karma provenance description records (the hash of the
// value Karma wrote, ValueHash's form), and whether description is Karma's provenance at all.
// Parameter Store keeps a description when a later write gives none, so it may be the hash of a
// value that was since overwritten.
func ProvenanceHash(description string) (string, bool) {
	if !strings.HasPrefix(description, "karma: ") {
		return "", false
	}
	i := strings.LastIndex(description, " sha256=")
	if i < 0 {
		return "", false
	}
	return description[i+len(" sha256="):], true
}

// ValueHash is the hash Provenance records for a value: the first 16 hex digits of its SHA-256.
func ValueHash(value string) string { return valueHash(value) }

func valueHash(v string) string {
	sum := sha256.Sum256([]byte(v))
	return hex.EncodeToString(sum[:8])
}
