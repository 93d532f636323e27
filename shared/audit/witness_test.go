package audit_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"

	"github.com/usekarma/karma/shared/audit"
	"github.com/usekarma/karma/shared/embedded"
	"github.com/usekarma/karma/shared/params"
	"github.com/usekarma/karma/shared/params/ssm"
)

// witnessStores are the parameter stores a ParamWitness runs on: the embedded one, and SSM on
// moto when KARMA_TEST_MOTO_ENDPOINT is set.
func witnessStores(t *testing.T) map[string]params.Store {
	t.Helper()
	_, db := newLog(t)
	emb, err := embedded.NewParamStore(db, "audit")
	if err != nil {
		t.Fatal(err)
	}
	stores := map[string]params.Store{"embedded": emb}
	if ep := os.Getenv("KARMA_TEST_MOTO_ENDPOINT"); ep != "" {
		s, err := ssm.NewFromConfig(t.Context(), ep, config.WithRegion("us-east-1"),
			config.WithCredentialsProvider(credentials.NewStaticCredentialsProvider("test", "test", "")),
			config.WithSharedConfigFiles([]string{}), config.WithSharedCredentialsFiles([]string{}))
		if err != nil {
			t.Fatal(err)
		}
		stores["ssm"] = s
	} else {
		t.Log("KARMA_TEST_MOTO_ENDPOINT is not set: the witness runs on the embedded parameter store only")
	}
	return stores
}

// WriteCheckpoint records the checkpoint in the log and its digest in the witness, once per
// digest; the witness's history then leads back to the checkpoint, which the log verifies
// against until a record it saw is removed.
func TestParamWitness(t *testing.T) {
	for name, store := range witnessStores(t) {
		t.Run(name, func(t *testing.T) {
			ctx := t.Context()
			l, db := newLog(t)
			w := &audit.ParamWitness{Store: store, Name: fmt.Sprintf("/karma-test/audit-%08x/checkpoint", rand.Uint32()), User: "auditor"}
			if h, err := w.History(ctx); err != nil || len(h) != 0 {
				t.Fatalf("History of a new witness = %v, %v; want empty", h, err)
			}
			if _, err := audit.Pick(nil, 0); !errors.Is(err, audit.ErrNotFound) {
				t.Errorf("Pick(empty) = %v, want audit.ErrNotFound", err)
			}
			appendAll(t, l, record("a1", "a"), record("a2", "a"), record("b1", "b"))
			cp1, w1, err := audit.WriteCheckpoint(ctx, l, w, "cli", "auditor", at)
			// Versions are compared relative to each other: an SDK retry of a write that did reach
			// moto under load leaves one more version with the same digest.
			if err != nil || w1.Version < 1 || w1.Digest != cp1.Digest || w1.Records != 3 {
				t.Fatalf("WriteCheckpoint = %+v, %+v, %v", cp1, w1, err)
			}
			if _, again, err := audit.WriteCheckpoint(ctx, l, w, "cli", "auditor", at.Add(time.Minute)); err != nil || again.Version != w1.Version {
				t.Errorf("WriteCheckpoint with nothing appended = version %d, %v; want version %d again", again.Version, err, w1.Version)
			}
			appendAll(t, l, record("a3", "a"))
			cp2, w2, err := audit.WriteCheckpoint(ctx, l, w, "cli", "auditor", at.Add(time.Hour))
			if err != nil || w2.Version <= w1.Version || cp2.Digest == cp1.Digest {
				t.Fatalf("WriteCheckpoint after an append = %+v, %v", w2, err)
			}
			history, err := w.History(ctx)
			history = dedupeDigests(history)
			if err != nil || len(history) != 2 || history[0].Digest != cp1.Digest || history[1].Digest != cp2.Digest ||
				!history[1].TakenAt.Equal(cp2.TakenAt) || history[1].Chains != 2 || history[1].Records != 4 {
				t.Fatalf("History = %+v, %v", history, err)
			}
			for _, version := range []int64{0, 1} {
				entry, err := audit.Pick(history, version)
				if err != nil {
					t.Fatal(err)
				}
				cp, err := audit.LoadCheckpoint(ctx, l, entry.Digest)
				if err != nil {
					t.Fatal(err)
				}
				if rep, err := audit.VerifyLog(ctx, l, audit.VerifyOptions{Against: &cp}); err != nil || rep.Err() != nil {
					t.Errorf("VerifyLog against witness version %d: %v, %v", version, err, rep.Err())
				}
			}
			if _, err := audit.Pick(history, 7); !errors.Is(err, audit.ErrNotFound) || !strings.Contains(err.Error(), "versions 1 to 2") {
				t.Errorf("Pick(version 7) = %v", err)
			}
			// The newest record removed and the head rolled back: consistent on its own.
			if _, err := db.SQL.Exec(`DELETE FROM audit WHERE chain = 'a' AND seq = 3`); err != nil {
				t.Fatal(err)
			}
			if _, err := db.SQL.Exec(`UPDATE audit_heads SET seq = 2, hash = (SELECT hash FROM audit WHERE chain = 'a' AND seq = 2) WHERE chain = 'a'`); err != nil {
				t.Fatal(err)
			}
			if rep, _ := audit.VerifyLog(ctx, l, audit.VerifyOptions{}); rep.Err() != nil {
				t.Fatalf("without the witness: %v (the test wants a consistent rollback)", rep.Err())
			}
			cp, err := audit.LoadCheckpoint(ctx, l, history[1].Digest)
			if err != nil {
				t.Fatal(err)
			}
			rep, err := audit.VerifyLog(ctx, l, audit.VerifyOptions{Against: &cp})
			if err != nil || len(rep.Broken) != 1 || rep.Broken[0].Chain != "a" || rep.Broken[0].Seq != 3 {
				t.Errorf("VerifyLog against the witness after a rollback = %+v, %v; want chain a broken at seq 3", rep.Broken, err)
			}
			t.Log(rep.Err())
		})
	}
}

// A witness version that is not a checkpoint entry is named, not skipped.
func TestParamWitnessRejectsForeignValues(t *testing.T) {
	for name, store := range witnessStores(t) {
		t.Run(name, func(t *testing.T) {
			w := &audit.ParamWitness{Store: store, Name: fmt.Sprintf("/karma-test/audit-%08x/checkpoint", rand.Uint32())}
			for _, v := range []string{`{"digest":"` + strings.Repeat("a", 64) + `","chains":1,"records":1,"taken_at":"2026-11-22T14:03:12Z"}`, `not json`} {
				if _, err := store.Put(t.Context(), params.PutInput{Name: w.Name, Value: v}); err != nil {
					t.Fatal(err)
				}
			}
			if _, err := w.History(t.Context()); err == nil || !strings.Contains(err.Error(), w.Name+" version 2: not a checkpoint entry") {
				t.Errorf("History = %v, want an error naming version 2", err)
			}
		})
	}
}

// dedupeDigests drops versions repeating the digest of the one before (a retried write).
func dedupeDigests(h []audit.Witnessed) []audit.Witnessed {
	var out []audit.Witnessed
	for _, w := range h {
		if len(out) > 0 && out[len(out)-1].Digest == w.Digest {
			continue
		}
		out = append(out, w)
	}
	return out
}

// A periodic WriteCheckpoint after someone removed what the newest witnessed checkpoint saw
// (and made the log consistent again) must not witness the result: the newest witness entry
// would then certify the tampered log, and verifying against it would pass. It fails, naming
// the chain, and leaves the witness as it was.
func TestWriteCheckpointRefusesALogThatLostWhatTheWitnessSaw(t *testing.T) {
	t.Cleanup(audit.SetIndexLag(time.Millisecond, time.Millisecond))
	rollBack := `UPDATE audit_heads SET seq = 2, hash = (SELECT hash FROM audit WHERE chain = 'a' AND seq = 2) WHERE chain = 'a'`
	for _, tc := range []struct {
		name  string
		stmts []string
		more  []audit.Record // appended by Karma afterwards
		is    error
		what  string
	}{
		{"newest removed, head rolled back", []string{`DELETE FROM audit WHERE chain = 'a' AND seq = 3`, rollBack}, nil,
			audit.ErrTampered, "chain a: seq 3: missing"},
		{"the same, then appended again", []string{`DELETE FROM audit WHERE chain = 'a' AND seq = 3`, rollBack},
			[]audit.Record{record("a3x", "a"), record("a4", "a")}, audit.ErrTampered, "chain a: seq 3: hash differs"},
		{"head rolled back, the record left", []string{rollBack}, nil, audit.ErrTampered, "chain a: seq 3: missing"},
		{"a chain dropped", []string{`DELETE FROM audit WHERE chain = 'b'`, `DELETE FROM audit_heads WHERE chain = 'b'`}, nil,
			audit.ErrTampered, "chain b: seq 1: missing: the chain is gone"},
		{"the witnessed checkpoint removed", []string{`DELETE FROM audit WHERE chain = '` + audit.CheckpointChain + `'`,
			`DELETE FROM audit_heads WHERE chain = '` + audit.CheckpointChain + `'`}, []audit.Record{record("b2", "b")}, audit.ErrNotFound, "is not in the audit log"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := t.Context()
			l, db := newLog(t)
			store, err := embedded.NewParamStore(db, "audit")
			if err != nil {
				t.Fatal(err)
			}
			w := &audit.ParamWitness{Store: store, Name: "/karma/audit/checkpoint", User: "auditor"}
			appendAll(t, l, record("a1", "a"), record("a2", "a"), record("a3", "a"), record("b1", "b"))
			_, w1, err := audit.WriteCheckpoint(ctx, l, w, "karma", "karma serve", at)
			if err != nil {
				t.Fatal(err)
			}
			for _, s := range tc.stmts {
				if _, err := db.SQL.Exec(s); err != nil {
					t.Fatal(err)
				}
			}
			if len(tc.more) > 0 {
				appendAll(t, l, tc.more...)
			}
			_, got, err := audit.WriteCheckpoint(ctx, l, w, "karma", "karma serve", at.Add(time.Hour))
			if !errors.Is(err, tc.is) || !strings.Contains(err.Error(), tc.what) || got.Version != 0 {
				t.Fatalf("WriteCheckpoint after tampering = version %d, %v; want an error matching %v naming %q", got.Version, err, tc.is, tc.what)
			}
			history, err := w.History(ctx)
			if err != nil || len(history) != 1 || history[0].Version != w1.Version {
				t.Fatalf("witness after the refusal = %+v, %v; want version %d only", history, err, w1.Version)
			}
			if cp, err := audit.LoadCheckpoint(ctx, l, history[0].Digest); err == nil {
				if rep, err := audit.VerifyLog(ctx, l, audit.VerifyOptions{Against: &cp}); err != nil || rep.Err() == nil {
					t.Errorf("VerifyLog against the newest witness entry = %v, %v; want the tampering found", rep.Err(), err)
				}
			}
		})
	}
}

// queryFails is a log whose Query fails once fail is set (a store that cannot be read).
type queryFails struct {
	audit.Log
	fail bool
}

func (q *queryFails) Query(ctx context.Context, aq audit.Query) ([]audit.Record, error) {
	if q.fail {
		return nil, errors.New("connection refused")
	}
	return q.Log.Query(ctx, aq)
}

// A witnessed checkpoint that cannot be read (the store failing, not the checkpoint missing) is
// a read error: WriteCheckpoint writes nothing and does not claim the log lost anything.
func TestWriteCheckpointReadErrorIsNoFinding(t *testing.T) {
	ctx := t.Context()
	el, db := newLog(t)
	l := &queryFails{Log: el}
	store, err := embedded.NewParamStore(db, "audit")
	if err != nil {
		t.Fatal(err)
	}
	w := &audit.ParamWitness{Store: store, Name: "/karma/audit/checkpoint", User: "auditor"}
	appendAll(t, l, record("a1", "a"))
	if _, _, err := audit.WriteCheckpoint(ctx, l, w, "karma", "karma serve", at); err != nil {
		t.Fatal(err)
	}
	appendAll(t, l, record("a2", "a"))
	l.fail = true
	_, got, err := audit.WriteCheckpoint(ctx, l, w, "karma", "karma serve", at.Add(time.Hour))
	if err == nil || errors.Is(err, audit.ErrTampered) || errors.Is(err, audit.ErrNotFound) ||
		strings.Contains(err.Error(), "no longer holds") || !strings.Contains(err.Error(), "connection refused") || got.Version != 0 {
		t.Errorf("WriteCheckpoint with the log unreadable = version %d, %v; want the read error, no finding", got.Version, err)
	}
}

// hidingLog does not show a checkpoint's records to the first hide Queries for it, as an index
// that has not caught up with a checkpoint another writer saved a moment ago.
type hidingLog struct {
	audit.Log
	digest string
	hide   int
}

func (h *hidingLog) Query(ctx context.Context, q audit.Query) ([]audit.Record, error) {
	if q.Correlation == "checkpoint/"+h.digest && h.hide > 0 {
		h.hide--
		return []audit.Record{}, nil
	}
	return h.Log.Query(ctx, q)
}

// The newest witnessed checkpoint not found at once (an index catching up) is waited for, not
// reported as removed.
func TestWriteCheckpointWaitsForAnIndexCatchingUp(t *testing.T) {
	t.Cleanup(audit.SetIndexLag(time.Millisecond, time.Millisecond))
	ctx := t.Context()
	el, db := newLog(t)
	store, err := embedded.NewParamStore(db, "audit")
	if err != nil {
		t.Fatal(err)
	}
	w := &audit.ParamWitness{Store: store, Name: "/karma/audit/checkpoint", User: "auditor"}
	appendAll(t, el, record("a1", "a"))
	cp1, _, err := audit.WriteCheckpoint(ctx, el, w, "karma", "karma serve", at)
	if err != nil {
		t.Fatal(err)
	}
	appendAll(t, el, record("a2", "a"))
	l := &hidingLog{Log: el, digest: cp1.Digest, hide: 2}
	if _, got, err := audit.WriteCheckpoint(ctx, l, w, "karma", "karma serve", at.Add(time.Hour)); err != nil || got.Version != 2 {
		t.Errorf("WriteCheckpoint while the index catches up = version %d, %v; want version 2", got.Version, err)
	}
}
