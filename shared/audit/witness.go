package audit

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/usekarma/karma/shared/params"
)

// Witness keeps checkpoint digests outside the log, with their history, where those who can
// write the log cannot rewrite them: a Parameter Store parameter in another account or under
// an IAM policy the audit writers lack (ParamWitness). Given the digests, LoadCheckpoint and
// VerifyLog prove that nothing the witnessed checkpoints saw was removed or rewritten since.
type Witness interface {
	// Write records a checkpoint's digest and counts; it returns them with Version set.
	Write(ctx context.Context, w Witnessed) (Witnessed, error)
	// History returns every kept entry, oldest first.
	History(ctx context.Context) ([]Witnessed, error)
}

// Witnessed is one checkpoint as a witness keeps it: its digest, counts and time (the stored
// value), and where and when the witness stored it.
type Witnessed struct {
	Digest  string    `json:"digest"`
	Chains  int       `json:"chains"`
	Records int64     `json:"records"`
	TakenAt time.Time `json:"taken_at"`
	// Set by the witness:
	Version   int64     `json:"version,omitempty"`
	WrittenAt time.Time `json:"written_at,omitzero"`
	WrittenBy string    `json:"written_by,omitempty"`
}

// Of is the witness entry of cp.
func Of(cp Checkpoint) Witnessed {
	return Witnessed{Digest: cp.Digest, Chains: cp.Chains, Records: cp.Records, TakenAt: cp.TakenAt}
}

// witnessValue is what ParamWitness stores: the checkpoint's part of Witnessed.
type witnessValue struct {
	Digest  string    `json:"digest"`
	Chains  int       `json:"chains"`
	Records int64     `json:"records"`
	TakenAt time.Time `json:"taken_at"`
}

// ParamWitness is a Witness on one parameter of a parameter store that keeps every version
// (params.Historian: the embedded store and SSM, which keeps the last 100 versions). Each
// checkpoint is one version, its value {"digest", "chains", "records", "taken_at"}.
type ParamWitness struct {
	Store params.Store
	Name  string // e.g. "/karma/audit/checkpoint"
	User  string // recorded as the writer by the embedded store (SSM records the caller)
}

var _ Witness = (*ParamWitness)(nil)

// Write puts the digest as a new version of the parameter.
func (p *ParamWitness) Write(ctx context.Context, w Witnessed) (Witnessed, error) {
	v, _ := json.Marshal(witnessValue{Digest: w.Digest, Chains: w.Chains, Records: w.Records, TakenAt: w.TakenAt.UTC()})
	res, err := p.Store.Put(ctx, params.PutInput{Name: p.Name, Value: string(v), Type: params.TypeString,
		Description: "karma: audit checkpoint", User: p.User})
	if err != nil {
		return Witnessed{}, fmt.Errorf("audit: witness %s: write: %w", p.Name, err)
	}
	w.Version = res.Version
	return w, nil
}

// History reads every kept version of the parameter, oldest first; none yet is an empty list.
// A version that is not a checkpoint entry fails the read, naming it.
func (p *ParamWitness) History(ctx context.Context) ([]Witnessed, error) {
	h, ok := p.Store.(params.Historian)
	if !ok {
		return nil, fmt.Errorf("audit: witness %s: the parameter store keeps no history", p.Name)
	}
	versions, err := h.History(ctx, p.Name)
	if errors.Is(err, params.ErrNotFound) {
		return []Witnessed{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("audit: witness %s: history: %w", p.Name, err)
	}
	out := make([]Witnessed, 0, len(versions))
	for _, v := range versions {
		w, err := parseWitnessValue(v.Value)
		if err != nil {
			return nil, fmt.Errorf("audit: witness %s version %d: %w", p.Name, v.Version, err)
		}
		w.Version, w.WrittenAt, w.WrittenBy = v.Version, v.LastModified, v.LastModifiedUser
		out = append(out, w)
	}
	return out, nil
}

// parseWitnessValue reads a stored witness value: a JSON object with a valid digest.
func parseWitnessValue(s string) (Witnessed, error) {
	var v witnessValue
	if err := json.Unmarshal([]byte(s), &v); err != nil {
		return Witnessed{}, fmt.Errorf("not a checkpoint entry: %w", err)
	}
	d, err := ParseDigest(v.Digest)
	if err != nil {
		return Witnessed{}, fmt.Errorf("not a checkpoint entry: %w", err)
	}
	return Witnessed{Digest: d, Chains: v.Chains, Records: v.Records, TakenAt: v.TakenAt}, nil
}

// Pick returns the entry of history with version (0 = the newest).
func Pick(history []Witnessed, version int64) (Witnessed, error) {
	if len(history) == 0 {
		return Witnessed{}, fmt.Errorf("%w: the witness holds no checkpoint yet (karma audit head --witness writes one)", ErrNotFound)
	}
	if version == 0 {
		return history[len(history)-1], nil
	}
	for _, w := range history {
		if w.Version == version {
			return w, nil
		}
	}
	return Witnessed{}, fmt.Errorf("%w: the witness has no version %d (it keeps versions %d to %d)", ErrNotFound,
		version, history[0].Version, history[len(history)-1].Version)
}

// WriteCheckpoint takes a checkpoint of l, records it in l and gives its digest to w, unless
// w's newest entry already holds that digest (nothing was appended since): then that entry is
// returned and nothing is written to w. This is what a periodic job runs (karma serve, a
// scheduled Lambda); actorKind and actor say who records the checkpoint.
//
// It witnesses only a log that still holds what w's newest entry saw: every chain of that
// checkpoint still there, at least as long, with the same hash at its seq (what VerifyLog with
// Against checks of each head). Else — records the witness saw were removed, the head rolled
// back, a chain dropped or rewritten, or that checkpoint removed from the log — it fails (an
// error matching ErrTampered, or ErrNotFound when the checkpoint is gone) and writes nothing:
// a periodic job must not certify a tampered log, so that verifying against the newest witness
// entry still finds what was done.
func WriteCheckpoint(ctx context.Context, l Log, w Witness, actorKind, actor string, now time.Time) (Checkpoint, Witnessed, error) {
	history, err := w.History(ctx)
	if err != nil {
		return Checkpoint{}, Witnessed{}, err
	}
	cp, err := TakeCheckpoint(ctx, l, now)
	if err != nil {
		return Checkpoint{}, Witnessed{}, err
	}
	n := len(history)
	if n > 0 && history[n-1].Digest != cp.Digest {
		if err := stillHolds(ctx, l, history[n-1], cp); err != nil {
			return cp, Witnessed{}, err
		}
	}
	if cp, err = SaveCheckpoint(ctx, l, cp, actorKind, actor); err != nil {
		return cp, Witnessed{}, err
	}
	if n > 0 && history[n-1].Digest == cp.Digest {
		return cp, history[n-1], nil
	}
	written, err := w.Write(ctx, Of(cp))
	return cp, written, err
}

// stillHolds checks that cp, a checkpoint just taken of l, still holds every head of the
// witnessed checkpoint last: same seq and hash, or a longer chain with last's hash at last's
// seq (one RecordAt per chain that grew). A head behind last's is refused even when the records
// beyond it are still stored: witnessed, it would let them be removed without trace.
func stillHolds(ctx context.Context, l Log, last Witnessed, cp Checkpoint) error {
	refuse := func(err error) error {
		return fmt.Errorf("audit: witness: not witnessing checkpoint %s: the log no longer holds what witness version %d "+
			"(checkpoint %s) saw (karma audit verify --against witness shows it): %w", Short(cp.Digest), last.Version, Short(last.Digest), err)
	}
	prev, err := LoadCheckpoint(ctx, l, last.Digest)
	for _, wait := range indexLag {
		// Not found may be an index that has not caught up yet (the DynamoDB log finds a
		// checkpoint through one): a checkpoint another writer witnessed a moment ago.
		if !errors.Is(err, ErrNotFound) || sleepCtx(ctx, wait) != nil {
			break
		}
		prev, err = LoadCheckpoint(ctx, l, last.Digest)
	}
	switch {
	case errors.Is(err, ErrNotFound) || Broken(err) != nil:
		return refuse(err)
	case err != nil: // could not read it: no finding either way
		return fmt.Errorf("audit: witness: witness version %d: %w", last.Version, err)
	}
	now := make(map[string]Head, len(cp.Heads))
	for _, h := range cp.Heads {
		now[h.Chain] = h
	}
	since := fmt.Sprintf("checkpoint %s (taken %s)", Short(prev.Digest), prev.TakenAt.UTC().Format(time.RFC3339))
	var broken []error
	for _, want := range prev.Heads {
		cur, ok := now[want.Chain]
		if !ok {
			broken = append(broken, &TamperError{Chain: want.Chain, Seq: 1,
				What: fmt.Sprintf("missing: the chain is gone, unlisted or without a head; %s has it up to seq %d", since, want.Seq)})
			continue
		}
		if cur.Seq < want.Seq { // whatever is stored beyond the head: the head moved back
			broken = append(broken, &TamperError{Chain: want.Chain, Seq: cur.Seq + 1,
				What: fmt.Sprintf("missing: %s has this chain up to seq %d; its head now says seq %d", since, want.Seq, cur.Seq)})
			continue
		}
		te, err := checkAgainst(ctx, l, &prev, want, cur, true)
		if err != nil {
			return fmt.Errorf("audit: witness: chain %s: %w", want.Chain, err)
		}
		if te != nil {
			broken = append(broken, te)
		}
	}
	if len(broken) > 0 {
		return refuse(errors.Join(broken...))
	}
	return nil
}

// indexLag is how long stillHolds waits, between attempts, for a witnessed checkpoint that the
// log does not find (yet) before calling it removed.
var indexLag = []time.Duration{500 * time.Millisecond, 2 * time.Second}

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
