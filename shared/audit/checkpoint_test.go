package audit_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/usekarma/karma/shared/audit"
	"github.com/usekarma/karma/shared/embedded"
)

// newLog is an embedded log on a fresh file (the store the checkpoint logic runs over in these
// tests; both stores pass the same conformance suite, audittest).
func newLog(t *testing.T) (*embedded.AuditLog, *embedded.DB) {
	t.Helper()
	db, err := embedded.Open(filepath.Join(t.TempDir(), "karma.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	l, err := embedded.NewAuditLog(t.Context(), db)
	if err != nil {
		t.Fatal(err)
	}
	return l, db
}

var at = time.Date(2026, 11, 22, 14, 3, 12, 0, time.UTC)

func record(id, chain string) audit.Record {
	return audit.Record{MessageID: id, Type: "deployment.applied", Version: 1, Env: "prod", Chain: chain,
		CorrelationID: "corr", ActorKind: "git", Actor: "Ada", OccurredAt: at, Body: json.RawMessage(`{}`)}
}

func appendAll(t *testing.T, l audit.Log, recs ...audit.Record) {
	t.Helper()
	if _, err := l.Append(t.Context(), recs...); err != nil {
		t.Fatal(err)
	}
}

// The digest is SHA-256 of [[chain, seq, hash], ...] as compact JSON, unescaped: documented so
// that an auditor can recompute it with jq and sha256sum.
func TestDigestOf(t *testing.T) {
	heads := []audit.Head{{Chain: "prod/vpc/core", Seq: 3, Hash: "ab"}, {Chain: "a<b>&c", Seq: 1, Hash: "cd"}}
	// printf '%s' '[["prod/vpc/core",3,"ab"],["a<b>&c",1,"cd"]]' | sha256sum
	const want = "da31a0db7923d368dc3427c179102b0a1c87aeac922c183085b3f95b5749a42c"
	if got := audit.DigestOf(heads); got != want {
		t.Errorf("DigestOf = %s, want %s", got, want)
	}
	if audit.DigestOf(nil) == want || audit.DigestOf(heads[:1]) == want {
		t.Errorf("different heads, same digest")
	}
}

func TestParseDigest(t *testing.T) {
	d := strings.Repeat("ab", 32)
	for in, want := range map[string]string{d: d, "sha256:" + d: d, strings.ToUpper(d): d, " " + d + "\n": d} {
		if got, err := audit.ParseDigest(in); err != nil || got != want {
			t.Errorf("ParseDigest(%q) = %q, %v", in, got, err)
		}
	}
	for _, in := range []string{"", "abc", d + "0", strings.Repeat("zz", 32), "witness"} {
		if _, err := audit.ParseDigest(in); err == nil || !strings.Contains(err.Error(), "64 hexadecimal digits") {
			t.Errorf("ParseDigest(%q) = %v, want an error naming the expected form", in, err)
		}
	}
}

// A checkpoint leaves out its own chain, so taking one again with nothing appended gives the
// same digest (and saving it appends nothing); an append changes it.
func TestTakeCheckpointIsStable(t *testing.T) {
	ctx := t.Context()
	l, _ := newLog(t)
	appendAll(t, l, record("a1", "a"), record("a2", "a"), record("b1", "b"))
	cp1, err := audit.TakeCheckpoint(ctx, l, at)
	if err != nil {
		t.Fatal(err)
	}
	if cp1.Chains != 2 || cp1.Records != 3 {
		t.Errorf("checkpoint = %d chains, %d records; want 2, 3", cp1.Chains, cp1.Records)
	}
	if _, err := audit.SaveCheckpoint(ctx, l, cp1, "cli", "auditor"); err != nil {
		t.Fatal(err)
	}
	cp2, err := audit.TakeCheckpoint(ctx, l, at.Add(time.Hour))
	if err != nil || cp2.Digest != cp1.Digest {
		t.Fatalf("second checkpoint: %v, digest %s; want %s", err, cp2.Digest, cp1.Digest)
	}
	if kept, err := audit.SaveCheckpoint(ctx, l, cp2, "cli", "auditor"); err != nil || !kept.TakenAt.Equal(cp1.TakenAt) {
		t.Fatalf("SaveCheckpoint of the same digest = taken %v, %v; want the first one's time %v", kept.TakenAt, err, cp1.TakenAt)
	}
	if recs, _ := l.Query(ctx, audit.Query{Correlation: "checkpoint/" + cp1.Digest}); len(recs) != 1 || recs[0].Chain != audit.CheckpointChain {
		t.Errorf("one checkpoint saved twice: %d record(s), want 1 in %s", len(recs), audit.CheckpointChain)
	}
	appendAll(t, l, record("b2", "b"))
	if cp3, _ := audit.TakeCheckpoint(ctx, l, at); cp3.Digest == cp1.Digest {
		t.Errorf("digest unchanged after an append")
	}
}

// A checkpoint too large for one record is saved in parts and loaded back whole.
func TestCheckpointInParts(t *testing.T) {
	ctx := t.Context()
	l, _ := newLog(t)
	var recs []audit.Record
	for i := range 1500 {
		recs = append(recs, record(fmt.Sprint(i), fmt.Sprintf("%s/%04d", strings.Repeat("long-chain-name-", 12), i)))
	}
	appendAll(t, l, recs...)
	cp, err := audit.TakeCheckpoint(ctx, l, at)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := audit.SaveCheckpoint(ctx, l, cp, "cli", "auditor"); err != nil {
		t.Fatal(err)
	}
	parts, _ := l.Query(ctx, audit.Query{Correlation: "checkpoint/" + cp.Digest})
	if len(parts) < 2 {
		t.Errorf("a checkpoint of %d chains saved in %d record(s), want several", cp.Chains, len(parts))
	}
	loaded, err := audit.LoadCheckpoint(ctx, l, cp.Digest)
	if err != nil || loaded.Chains != 1500 || len(loaded.Heads) != 1500 {
		t.Fatalf("LoadCheckpoint = %d chains, %d heads, %v", loaded.Chains, len(loaded.Heads), err)
	}
}

// partialLog stores only the first record of an Append and fails it, as a save of several
// transactions that stopped after its first.
type partialLog struct{ audit.Log }

func (p partialLog) Append(ctx context.Context, recs ...audit.Record) (int, error) {
	n, err := p.Log.Append(ctx, recs[:1]...)
	if err == nil && len(recs) > 1 {
		err = errors.New("stopped after the first transaction")
	}
	return n, err
}

// A save that stopped part-way, saved again later (a new TakenAt, the same digest: nothing was
// appended meanwhile), loads: the parts completed carry the TakenAt of the part stored first.
func TestCheckpointSavedAgainAfterAPartialSave(t *testing.T) {
	ctx := t.Context()
	l, _ := newLog(t)
	var recs []audit.Record
	for i := range 1500 {
		recs = append(recs, record(fmt.Sprint(i), fmt.Sprintf("%s/%04d", strings.Repeat("long-chain-name-", 12), i)))
	}
	appendAll(t, l, recs...)
	cp, err := audit.TakeCheckpoint(ctx, l, at)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := audit.SaveCheckpoint(ctx, partialLog{l}, cp, "cli", "auditor"); err == nil {
		t.Fatal("the partial save did not fail")
	}
	later, err := audit.TakeCheckpoint(ctx, l, at.Add(time.Hour))
	if err != nil || later.Digest != cp.Digest {
		t.Fatalf("the checkpoint an hour later: %v, digest %s (was %s)", err, later.Digest, cp.Digest)
	}
	saved, err := audit.SaveCheckpoint(ctx, l, later, "cli", "auditor")
	if err != nil || !saved.TakenAt.Equal(cp.TakenAt) {
		t.Fatalf("SaveCheckpoint again = taken at %s, %v; want the first save's %s", saved.TakenAt, err, cp.TakenAt)
	}
	loaded, err := audit.LoadCheckpoint(ctx, l, cp.Digest)
	if err != nil || len(loaded.Heads) != 1500 || !loaded.TakenAt.Equal(cp.TakenAt) {
		t.Fatalf("LoadCheckpoint = %d heads taken at %s, %v", len(loaded.Heads), loaded.TakenAt, err)
	}
}

// A stored checkpoint altered behind the log's back does not load: its heads no longer hash to
// the digest the witness holds. Removed, it is not found.
func TestLoadCheckpointAltered(t *testing.T) {
	ctx := t.Context()
	for name, tc := range map[string]struct {
		sql  string
		want func(error) bool
	}{
		"head seq lowered": {`UPDATE audit SET body = replace(body, '"seq":2', '"seq":1') WHERE chain = 'audit/checkpoints'`,
			func(err error) bool { return audit.Broken(err) != nil }},
		"part removed": {`DELETE FROM audit WHERE chain = 'audit/checkpoints'`,
			func(err error) bool { return errors.Is(err, audit.ErrNotFound) }},
		"not a checkpoint": {`UPDATE audit SET body = '{"x":1}' WHERE chain = 'audit/checkpoints'`,
			func(err error) bool { return audit.Broken(err) != nil }},
	} {
		t.Run(name, func(t *testing.T) {
			l, db := newLog(t)
			appendAll(t, l, record("a1", "a"), record("a2", "a"))
			cp, err := audit.TakeCheckpoint(ctx, l, at)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := audit.SaveCheckpoint(ctx, l, cp, "cli", "auditor"); err != nil {
				t.Fatal(err)
			}
			if _, err := db.SQL.Exec(tc.sql); err != nil {
				t.Fatal(err)
			}
			_, err = audit.LoadCheckpoint(ctx, l, cp.Digest)
			if !tc.want(err) {
				t.Errorf("LoadCheckpoint = %v", err)
			}
			t.Log(err)
		})
	}
}

// laggingLog is a log whose Query does not show what was appended through it yet, as the
// DynamoDB log's indexes may not, for a moment, show items just written.
type laggingLog struct {
	audit.Log
	fresh map[string]bool
}

func (g *laggingLog) Append(ctx context.Context, recs ...audit.Record) (int, error) {
	for _, r := range recs {
		g.fresh[r.MessageID] = true
	}
	return g.Log.Append(ctx, recs...)
}

func (g *laggingLog) Query(ctx context.Context, q audit.Query) ([]audit.Record, error) {
	recs, err := g.Log.Query(ctx, q)
	out := recs[:0]
	for _, r := range recs {
		if !g.fresh[r.MessageID] {
			out = append(out, r)
		}
	}
	return out, err
}

// Completing a partial save on a log whose index has not caught up with the parts just
// appended succeeds: it does not read back a checkpoint half shown and call it tampered.
func TestCheckpointCompletedWhileTheIndexLags(t *testing.T) {
	ctx := t.Context()
	l, _ := newLog(t)
	var recs []audit.Record
	for i := range 1500 {
		recs = append(recs, record(fmt.Sprint(i), fmt.Sprintf("%s/%04d", strings.Repeat("long-chain-name-", 12), i)))
	}
	appendAll(t, l, recs...)
	cp, err := audit.TakeCheckpoint(ctx, l, at)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := audit.SaveCheckpoint(ctx, partialLog{l}, cp, "cli", "auditor"); err == nil {
		t.Fatal("the partial save did not fail")
	}
	later, _ := audit.TakeCheckpoint(ctx, l, at.Add(time.Hour))
	saved, err := audit.SaveCheckpoint(ctx, &laggingLog{Log: l, fresh: map[string]bool{}}, later, "cli", "auditor")
	if err != nil || saved.Digest != cp.Digest || !saved.TakenAt.Equal(cp.TakenAt) || len(saved.Heads) != 1500 {
		t.Fatalf("SaveCheckpoint while the index lags = %s taken at %s, %d heads, %v; want %s taken at %s",
			audit.Short(saved.Digest), saved.TakenAt, len(saved.Heads), err, audit.Short(cp.Digest), cp.TakenAt)
	}
	loaded, err := audit.LoadCheckpoint(ctx, l, cp.Digest)
	if err != nil || len(loaded.Heads) != 1500 || !loaded.TakenAt.Equal(cp.TakenAt) {
		t.Fatalf("LoadCheckpoint once caught up = %d heads taken at %s, %v", len(loaded.Heads), loaded.TakenAt, err)
	}
}
