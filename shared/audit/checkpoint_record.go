package audit

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"time"
)

// A checkpoint is kept in the log itself, so that a digest alone (from a witness, or typed by an
// auditor) is enough to verify against: the digest authenticates the heads stored with it, and a
// checkpoint removed from the log is itself evidence of tampering. It is recorded as
// CheckpointType records in CheckpointChain, one record per part of at most maxPartBytes of
// heads, with correlation id "checkpoint/<digest>" (Query finds them) and message id
// "checkpoint/<digest>/<part>" (saving the same checkpoint twice appends nothing).

// CheckpointType is the record type of a checkpoint part.
const CheckpointType = "audit.checkpoint"

// maxPartBytes bounds the heads of one part, well under DynamoDB's 400 KB item limit.
const maxPartBytes = 256 * 1024

// checkpointPart is the body of one checkpoint record.
type checkpointPart struct {
	Digest  string    `json:"digest"`
	TakenAt time.Time `json:"taken_at"`
	Chains  int       `json:"chains"`
	Records int64     `json:"records"`
	Part    int       `json:"part"` // 1..Parts
	Parts   int       `json:"parts"`
	Heads   []Head    `json:"heads"`
}

func checkpointCorrelation(digest string) string { return "checkpoint/" + digest }

// SaveCheckpoint records cp in the log (CheckpointChain), attributed to actor (kind, name), and
// returns the checkpoint as the log keeps it: cp, or, when a checkpoint with the same digest
// was saved before, that one (with its earlier TakenAt). A save that stopped part-way (on
// DynamoDB a checkpoint of many parts takes several transactions) is completed with the
// TakenAt of the parts it stored, so that every part agrees and the checkpoint loads.
func SaveCheckpoint(ctx context.Context, l Log, cp Checkpoint, actorKind, actor string) (Checkpoint, error) {
	stored, err := l.Query(ctx, Query{Correlation: checkpointCorrelation(cp.Digest)})
	if err != nil {
		return cp, fmt.Errorf("audit: save checkpoint %s: %w", Short(cp.Digest), err)
	}
	found := false
	for _, r := range stored {
		var p checkpointPart
		if r.Type == CheckpointType && json.Unmarshal(r.Body, &p) == nil && p.Digest == cp.Digest {
			cp.TakenAt, found = p.TakenAt, true
			break
		}
	}
	parts := splitHeads(cp.Heads)
	recs := make([]Record, len(parts))
	for i, heads := range parts {
		body, err := json.Marshal(checkpointPart{Digest: cp.Digest, TakenAt: cp.TakenAt,
			Chains: cp.Chains, Records: cp.Records, Part: i + 1, Parts: len(parts), Heads: heads})
		if err != nil {
			return cp, fmt.Errorf("audit: save checkpoint: %w", err)
		}
		recs[i] = Record{MessageID: fmt.Sprintf("checkpoint/%s/%d", cp.Digest, i+1), Type: CheckpointType, Version: 1,
			Chain: CheckpointChain, CorrelationID: checkpointCorrelation(cp.Digest), ActorKind: actorKind, Actor: actor,
			OccurredAt: cp.TakenAt, Body: body}
	}
	n, err := l.Append(ctx, recs...)
	if err != nil {
		return cp, fmt.Errorf("audit: save checkpoint %s: %w", Short(cp.Digest), err)
	}
	if n == len(recs) || found {
		// Every part is stored now, as recs: the same heads cut the same way, with the TakenAt
		// of the part found. Not read back: on DynamoDB the Query finds parts through an index
		// that may not show the ones just appended yet, and a partial read fails as tampering.
		return cp, nil
	}
	// Parts were stored that the Query did not show (an index not caught up): read the
	// checkpoint as the log keeps it, with their TakenAt.
	return LoadCheckpoint(ctx, l, cp.Digest)
}

// splitHeads cuts heads into parts of at most maxPartBytes (at least one part, maybe empty).
func splitHeads(heads []Head) [][]Head {
	parts := [][]Head{{}}
	size := 0
	for _, h := range heads {
		n := len(h.Chain) + len(h.Hash) + 64 // JSON punctuation, names and the seq
		if size+n > maxPartBytes && len(parts[len(parts)-1]) > 0 {
			parts, size = append(parts, []Head{}), 0
		}
		parts[len(parts)-1] = append(parts[len(parts)-1], h)
		size += n
	}
	return parts
}

// LoadCheckpoint reads the checkpoint with digest from the log and checks that its heads hash
// to the digest. Not in the log: an error matching ErrNotFound. Stored but altered: a
// *TamperError on CheckpointChain.
func LoadCheckpoint(ctx context.Context, l Log, digest string) (Checkpoint, error) {
	recs, err := l.Query(ctx, Query{Correlation: checkpointCorrelation(digest)})
	if err != nil {
		return Checkpoint{}, fmt.Errorf("audit: load checkpoint %s: %w", Short(digest), err)
	}
	var parts []checkpointPart
	var seqs []int64
	for _, r := range recs {
		var p checkpointPart
		if r.Type != CheckpointType || r.Chain != CheckpointChain || json.Unmarshal(r.Body, &p) != nil || p.Digest != digest {
			return Checkpoint{}, &TamperError{Chain: r.Chain, Seq: r.Seq, What: fmt.Sprintf("record %s claims to be part of checkpoint %s but is not one", r.MessageID, Short(digest))}
		}
		parts, seqs = append(parts, p), append(seqs, r.Seq)
	}
	if len(parts) == 0 {
		return Checkpoint{}, fmt.Errorf("%w: checkpoint %s is not in the audit log: it was removed, or the digest is of another log", ErrNotFound, digest)
	}
	return assemble(digest, parts, seqs)
}

// assemble joins the parts of a checkpoint and checks them against digest.
func assemble(digest string, parts []checkpointPart, seqs []int64) (Checkpoint, error) {
	idx := make([]int, len(parts))
	for i := range idx {
		idx[i] = i
	}
	slices.SortFunc(idx, func(a, b int) int { return parts[a].Part - parts[b].Part })
	first := parts[idx[0]]
	cp := Checkpoint{Digest: digest, Chains: first.Chains, Records: first.Records}
	bad := func(i int, what string) error {
		return &TamperError{Chain: CheckpointChain, Seq: seqs[i], What: fmt.Sprintf("checkpoint %s: %s", Short(digest), what)}
	}
	for n, i := range idx {
		p := parts[i]
		if p.Part != n+1 || p.Parts != len(parts) || p.Chains != first.Chains || p.Records != first.Records || !p.TakenAt.Equal(first.TakenAt) {
			return Checkpoint{}, bad(i, fmt.Sprintf("part %d of %d does not fit the %d part(s) stored", p.Part, p.Parts, len(parts)))
		}
		cp.Heads = append(cp.Heads, p.Heads...)
	}
	cp.TakenAt = first.TakenAt.UTC()
	if got := NewCheckpoint(cp.Heads, cp.TakenAt); got.Digest != digest || got.Chains != cp.Chains || got.Records != cp.Records {
		return Checkpoint{}, bad(idx[0], "the stored heads do not hash to the digest (or their counts differ)")
	}
	return cp, nil
}
