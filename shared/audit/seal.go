package audit

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
)

// Sealed is a record normalized as the logs keep it, with its content (what its chain hash
// covers besides the previous hash: the record without Seq, PrevHash and Hash) encoded once.
// Only Seal makes one. A log that appends Sealed records (the embedded one) then hashes under
// its write lock only what depends on the chain's head: the audit stage seals its records
// before the transaction that appends them, where nothing waits for the encoding.
type Sealed struct {
	rec     Record
	content []byte
}

// Seal normalizes r as both logs store and return it — OccurredAt in UTC, an empty Body as
// none (hashed as null) — and encodes its content. The Body is copied: changing the caller's
// bytes afterwards changes neither what is stored nor what is hashed. It fails when Body is not
// valid JSON.
func Seal(r Record) (Sealed, error) {
	r.OccurredAt = r.OccurredAt.UTC()
	if len(r.Body) == 0 {
		r.Body = nil
	} else {
		r.Body = bytes.Clone(r.Body)
	}
	r.Seq, r.PrevHash, r.Hash = 0, "", ""
	b, err := content(r)
	switch {
	case err != nil && len(r.Body) > 0 && !json.Valid(r.Body):
		return Sealed{}, fmt.Errorf("audit: record %q: Body is not valid JSON", r.MessageID)
	case err != nil:
		return Sealed{}, fmt.Errorf("audit: record %q: %w", r.MessageID, err)
	}
	return Sealed{rec: r, content: b}, nil
}

// Record is the normalized record (Seq, PrevHash and Hash unset).
func (s Sealed) Record() Record { return s.rec }

// Hash is the record's chain hash after a record whose hash is prev: Record.ComputeHash,
// without encoding the record again.
func (s Sealed) Hash(prev string) string { return chainHash(prev, s.content) }

// content is what a record's chain hash covers besides the previous hash: the record, encoded,
// without Seq, PrevHash and Hash.
func content(r Record) ([]byte, error) {
	r.Seq, r.PrevHash, r.Hash = 0, "", ""
	return json.Marshal(r)
}

// chainHash is SHA-256 over prev, a zero byte and the record's content, in hex.
func chainHash(prev string, content []byte) string {
	h := sha256.New()
	h.Write([]byte(prev))
	h.Write([]byte{0})
	h.Write(content)
	return hex.EncodeToString(h.Sum(nil))
}
