package audit

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
)

// VerifyOptions say what VerifyLog checks besides every chain's links.
type VerifyOptions struct {
	// Against, when set, is an earlier checkpoint (LoadCheckpoint): every chain it saw must still
	// exist, at least as long, with the same hash at the checkpoint's seq.
	Against *Checkpoint
	// Prefix limits the check to chains whose name starts with it ("" = every chain).
	Prefix string
}

// Report is what VerifyLog found. Broken holds the first broken link of each chain that does
// not verify, sorted by chain; Err turns it into an error.
type Report struct {
	Chains  int            `json:"chains"`  // chains checked
	Records int64          `json:"records"` // records in them, by their stored heads
	Against *CheckpointRef `json:"against,omitempty"`
	Broken  []*TamperError `json:"broken"`
}

// CheckpointRef names the checkpoint a report was checked against.
type CheckpointRef struct {
	Digest  string    `json:"digest"`
	TakenAt time.Time `json:"taken_at"`
	Chains  int       `json:"chains"`
	Records int64     `json:"records"`
}

// Err is nil when nothing is broken, else an error matching ErrTampered listing every break.
func (r Report) Err() error {
	errs := make([]error, len(r.Broken))
	for i, b := range r.Broken {
		errs[i] = b
	}
	return errors.Join(errs...)
}

// VerifyLog checks every chain of the log (and, with Against, every chain of the checkpoint,
// listed or not): Log.Verify's link checks; a listed chain must have records; with Against,
// that nothing the checkpoint saw was removed or rewritten since. The error is for failures to
// read; what does not verify is in the report.
func VerifyLog(ctx context.Context, l Log, opts VerifyOptions) (Report, error) {
	heads, err := l.Heads(ctx)
	if err != nil {
		return Report{}, fmt.Errorf("audit: verify: %w", err)
	}
	listed := map[string]Head{}
	for _, h := range heads {
		if strings.HasPrefix(h.Chain, opts.Prefix) {
			listed[h.Chain] = h
		}
	}
	want := map[string]Head{}
	rep := Report{Broken: []*TamperError{}}
	if cp := opts.Against; cp != nil {
		rep.Against = &CheckpointRef{Digest: cp.Digest, TakenAt: cp.TakenAt, Chains: cp.Chains, Records: cp.Records}
		for _, h := range cp.Heads {
			if strings.HasPrefix(h.Chain, opts.Prefix) {
				want[h.Chain] = h
			}
		}
	}
	names := make([]string, 0, len(listed)+len(want))
	for c := range listed {
		names = append(names, c)
	}
	for c := range want {
		if _, ok := listed[c]; !ok {
			names = append(names, c)
		}
	}
	slices.Sort(names)
	for _, chain := range names {
		cur, isListed := listed[chain]
		te, err := verifyChain(ctx, l, chain, cur, isListed)
		if err == nil && te == nil {
			if w, ok := want[chain]; ok {
				te, err = checkAgainst(ctx, l, opts.Against, w, cur, isListed)
			}
		}
		if err != nil {
			return rep, fmt.Errorf("audit: verify: chain %s: %w", chain, err)
		}
		rep.Chains++
		rep.Records += cur.Seq
		if te != nil {
			rep.Broken = append(rep.Broken, te)
		}
	}
	return rep, nil
}

// verifyChain is Log.Verify, plus: a chain the log lists must have records.
func verifyChain(ctx context.Context, l Log, chain string, cur Head, listed bool) (*TamperError, error) {
	if err := l.Verify(ctx, chain); err != nil {
		if te := Broken(err); te != nil {
			return te, nil
		}
		return nil, err
	}
	if listed && cur.Seq == 0 {
		// Verify passed without a head, so there are no records either.
		return &TamperError{Chain: chain, Seq: 1, What: "missing: the chain is listed but has no records and no head"}, nil
	}
	return nil, nil
}

// checkAgainst checks that want, a head of checkpoint cp, is still in chain (which verified;
// cur is its head when listed).
func checkAgainst(ctx context.Context, l Log, cp *Checkpoint, want, cur Head, listed bool) (*TamperError, error) {
	if listed && cur.Seq == want.Seq && cur.Hash == want.Hash {
		return nil, nil // the chain has not moved since (Verify checked the head is its last record)
	}
	since := fmt.Sprintf("checkpoint %s (taken %s)", Short(cp.Digest), cp.TakenAt.UTC().Format(time.RFC3339))
	r, err := l.RecordAt(ctx, want.Chain, want.Seq)
	switch {
	case errors.Is(err, ErrNotFound) && listed:
		return &TamperError{Chain: want.Chain, Seq: cur.Seq + 1,
			What: fmt.Sprintf("missing: %s has this chain up to seq %d; it now ends at seq %d", since, want.Seq, cur.Seq)}, nil
	case errors.Is(err, ErrNotFound):
		return &TamperError{Chain: want.Chain, Seq: 1,
			What: fmt.Sprintf("missing: the chain is gone; %s has it up to seq %d", since, want.Seq)}, nil
	case err != nil:
		return nil, err
	case r.Hash != want.Hash:
		return &TamperError{Chain: want.Chain, Seq: want.Seq,
			What: fmt.Sprintf("hash differs from the one in %s: this record or one before it was rewritten or removed since", since)}, nil
	case !listed:
		return &TamperError{Chain: want.Chain, What: fmt.Sprintf("missing from the log's list of chains (its records verify; %s lists it)", since)}, nil
	}
	return nil, nil
}
