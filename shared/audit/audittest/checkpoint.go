package audittest

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/usekarma/karma/shared/audit"
)

// build appends n records to chain (a name within the fixture) and returns them as stored.
func (f fixture) build(t *testing.T, chain string, n int) []audit.Record {
	t.Helper()
	recs := make([]audit.Record, n)
	for i := range recs {
		recs[i] = f.rec(fmt.Sprintf("%s-%d", chain, i+1), chain, time.Duration(i)*time.Second)
	}
	f.appendN(t, n, recs...)
	return f.stored(t, f.p+"/"+chain, n)
}

// stored reads records 1..n of chain (a full chain name) with RecordAt.
func (f fixture) stored(t *testing.T, chain string, n int) []audit.Record {
	t.Helper()
	out := make([]audit.Record, n)
	for i := range out {
		r, err := f.log.RecordAt(t.Context(), chain, int64(i+1))
		if err != nil {
			t.Fatalf("RecordAt(%s, %d): %v", chain, i+1, err)
		}
		out[i] = r
	}
	return out
}

// ourHeads is Heads restricted to the fixture's chains.
func (f fixture) ourHeads(t *testing.T) []audit.Head {
	t.Helper()
	all, err := f.log.Heads(t.Context())
	if err != nil {
		t.Fatalf("Heads: %v", err)
	}
	if !slices.IsSortedFunc(all, func(a, b audit.Head) int { return strings.Compare(a.Chain, b.Chain) }) {
		t.Errorf("Heads not sorted by chain")
	}
	var ours []audit.Head
	for _, h := range all {
		if strings.HasPrefix(h.Chain, f.p+"/") {
			ours = append(ours, h)
		}
	}
	return ours
}

func testHeadsRecordAt(t *testing.T, f fixture) {
	a := f.build(t, "a", 3)
	b := f.build(t, "b", 1)
	want := []audit.Head{{Chain: f.p + "/a", Seq: 3, Hash: a[2].Hash}, {Chain: f.p + "/b", Seq: 1, Hash: b[0].Hash}}
	if got := f.ourHeads(t); !slices.Equal(got, want) {
		t.Errorf("Heads (ours) = %v, want %v", got, want)
	}
	for i, r := range a {
		if r.Seq != int64(i+1) || r.Chain != f.p+"/a" || r.MessageID != f.p+"/a-"+fmt.Sprint(i+1) || r.Hash != r.ComputeHash(r.PrevHash) {
			t.Errorf("RecordAt(a, %d) = %+v", i+1, r)
		}
	}
	for _, at := range []struct {
		chain string
		seq   int64
	}{{f.p + "/a", 4}, {f.p + "/a", 0}, {f.p + "/nope", 1}} {
		if _, err := f.log.RecordAt(t.Context(), at.chain, at.seq); !errors.Is(err, audit.ErrNotFound) {
			t.Errorf("RecordAt(%s, %d) = %v, want an error matching audit.ErrNotFound", at.chain, at.seq, err)
		}
	}
}

// testCheckpoint: a checkpoint is recorded once, loaded back intact, excludes its own chain,
// and a log that only grew since verifies against it.
func testCheckpoint(t *testing.T, f fixture) {
	ctx := t.Context()
	f.build(t, "a", 2)
	f.build(t, "b", 3)
	cp1 := f.checkpoint(t)
	// Other subtests may append meanwhile, so the digest of the whole log is not stable here
	// (shared/audit's own tests check that it is); saving the same checkpoint again is a no-op.
	again := cp1
	again.TakenAt = cp1.TakenAt.Add(time.Hour)
	if kept, err := audit.SaveCheckpoint(ctx, f.log, again, "test", "auditor"); err != nil || !kept.TakenAt.Equal(cp1.TakenAt) {
		t.Fatalf("SaveCheckpoint again = taken %v, %v; want the first one (taken %v)", kept.TakenAt, err, cp1.TakenAt)
	}
	if parts := f.query(t, audit.Query{Correlation: "checkpoint/" + cp1.Digest}); len(parts) != 1 || parts[0].Chain != audit.CheckpointChain {
		t.Errorf("checkpoint %s saved twice: %d records, want 1 in %s", cp1.Digest, len(parts), audit.CheckpointChain)
	}
	loaded, err := audit.LoadCheckpoint(ctx, f.log, cp1.Digest)
	if err != nil {
		t.Fatalf("LoadCheckpoint: %v", err)
	}
	if loaded.Digest != cp1.Digest || !loaded.TakenAt.Equal(cp1.TakenAt) || !slices.Equal(loaded.Heads, cp1.Heads) {
		t.Errorf("LoadCheckpoint = %+v, want %+v", loaded, cp1)
	}
	var ours int
	for _, h := range loaded.Heads {
		if strings.HasPrefix(h.Chain, f.p+"/") {
			ours++
		}
		if h.Chain == audit.CheckpointChain {
			t.Errorf("the checkpoint includes its own chain")
		}
	}
	if ours != 2 {
		t.Errorf("checkpoint holds %d of our chains, want 2", ours)
	}
	if _, err := audit.LoadCheckpoint(ctx, f.log, strings.Repeat("0", 64)); !errors.Is(err, audit.ErrNotFound) {
		t.Errorf("LoadCheckpoint(unknown digest) = %v, want audit.ErrNotFound", err)
	}

	f.appendN(t, 2, f.rec("a-3", "a", 3*time.Second), f.rec("c-1", "c", 0))
	if cp3 := f.checkpoint(t); cp3.Digest == cp1.Digest {
		t.Errorf("digest unchanged after an append")
	}
	f.expectBroken(t, &loaded) // grown, not altered: verifies against the older checkpoint
}

// checkpoint takes and saves a checkpoint of the whole log.
func (f fixture) checkpoint(t *testing.T) audit.Checkpoint {
	t.Helper()
	cp, err := audit.TakeCheckpoint(t.Context(), f.log, time.Now())
	if err != nil {
		t.Fatalf("TakeCheckpoint: %v", err)
	}
	kept, err := audit.SaveCheckpoint(t.Context(), f.log, cp, "test", "auditor")
	if err != nil {
		t.Fatalf("SaveCheckpoint: %v", err)
	}
	return kept
}

// expectBroken runs VerifyLog over the fixture's chains (against cp when set) and checks it
// reports exactly the breaks given, as "<chain within the fixture>@<seq>".
func (f fixture) expectBroken(t *testing.T, cp *audit.Checkpoint, want ...string) {
	t.Helper()
	rep, err := audit.VerifyLog(t.Context(), f.log, audit.VerifyOptions{Against: cp, Prefix: f.p + "/"})
	if err != nil {
		t.Fatalf("VerifyLog: %v", err)
	}
	got := make([]string, len(rep.Broken))
	for i, b := range rep.Broken {
		got[i] = fmt.Sprintf("%s@%d", strings.TrimPrefix(b.Chain, f.p+"/"), b.Seq)
	}
	if !slices.Equal(got, want) && !(len(got) == 0 && len(want) == 0) {
		t.Errorf("VerifyLog broken links = %v, want %v\n%v", got, want, rep.Err())
	}
	if len(want) > 0 && !errors.Is(rep.Err(), audit.ErrTampered) {
		t.Errorf("Report.Err() = %v, want an error matching audit.ErrTampered", rep.Err())
	}
}
