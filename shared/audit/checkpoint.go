package audit

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strings"
	"time"
)

// CheckpointChain is the chain checkpoints are recorded in (SaveCheckpoint). It is left out of
// the checkpoints themselves, so that taking one twice with nothing appended in between gives
// the same digest, and the same record.
const CheckpointChain = "audit/checkpoints"

// Checkpoint is the heads of every chain at one moment, hashed into one Digest. Each head was
// read from the log at some instant during TakeCheckpoint; heads only move forward, so every
// one of them must still be found later, unless records were removed or rewritten.
type Checkpoint struct {
	Digest  string    `json:"digest"`
	TakenAt time.Time `json:"taken_at"`
	Chains  int       `json:"chains"`
	Records int64     `json:"records"` // sum of the heads' seqs
	Heads   []Head    `json:"heads,omitempty"`
}

// TakeCheckpoint reads every chain's stored head (Log.Heads) but those of CheckpointChain and
// of chains without one, and digests them. It writes nothing.
func TakeCheckpoint(ctx context.Context, l Log, now time.Time) (Checkpoint, error) {
	all, err := l.Heads(ctx)
	if err != nil {
		return Checkpoint{}, fmt.Errorf("audit: checkpoint: %w", err)
	}
	heads := make([]Head, 0, len(all))
	for _, h := range all {
		if h.Chain != CheckpointChain && h.Seq > 0 {
			heads = append(heads, h)
		}
	}
	return NewCheckpoint(heads, now), nil
}

// NewCheckpoint is the checkpoint of heads (sorted by chain, as Log.Heads returns them).
func NewCheckpoint(heads []Head, takenAt time.Time) Checkpoint {
	cp := Checkpoint{Digest: DigestOf(heads), TakenAt: takenAt.UTC().Truncate(time.Millisecond), Chains: len(heads), Heads: heads}
	for _, h := range heads {
		cp.Records += h.Seq
	}
	return cp
}

// DigestOf is the hex SHA-256 of the heads as the compact JSON array [[chain, seq, hash], ...]
// in the order given (sorted by chain), with no HTML escaping: `jq -cj '[.heads[] | [.chain,
// .seq, .hash]]' | sha256sum` over a checkpoint in JSON gives the same digest.
func DigestOf(heads []Head) string {
	rows := make([][3]any, len(heads))
	for i, h := range heads {
		rows[i] = [3]any{h.Chain, h.Seq, h.Hash}
	}
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(rows) // strings and integers always encode
	sum := sha256.Sum256(bytes.TrimSuffix(b.Bytes(), []byte("\n")))
	return hex.EncodeToString(sum[:])
}

// ParseDigest accepts a checkpoint digest as printed ("sha256:" prefix optional, any case) and
// returns it in lower-case hex.
func ParseDigest(s string) (string, error) {
	d := strings.ToLower(strings.TrimPrefix(strings.TrimSpace(s), "sha256:"))
	if len(d) != sha256.Size*2 {
		return "", fmt.Errorf("checkpoint digest %q: want 64 hexadecimal digits", s)
	}
	if _, err := hex.DecodeString(d); err != nil {
		return "", fmt.Errorf("checkpoint digest %q: want 64 hexadecimal digits", s)
	}
	return d, nil
}

// Short is the first 12 digits of a digest, for messages.
func Short(digest string) string {
	if len(digest) > 12 {
		return digest[:12]
	}
	return digest
}
