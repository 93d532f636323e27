// Package audittest is the conformance suite every audit.Log passes: the embedded SQLite log
// and the DynamoDB log (against a local endpoint or a real table).
//
// Contract of Run and RunWithTamper:
//   - newLog is called once per subtest (the subtests run in parallel) and may return the same
//     backend every time: every subtest writes records whose message ids, chains, components,
//     deployment ids, correlation ids and actors carry its own random prefix, and queries only
//     by those, so reruns against a long-lived table never collide. Nothing is cleaned up.
//     Checkpoints (audit.SaveCheckpoint) all go to audit.CheckpointChain, under message ids
//     unique to their digest.
//   - Query's time range is half-open (Since <= OccurredAt < Until). Record times are whole
//     milliseconds in UTC, so a backend storing milliseconds round-trips them.
//   - Verify's error is an *audit.TamperError naming the chain and the seq of the first broken
//     link.
//   - Tampering cannot be done through audit.Log: RunWithTamper takes a Tamperer that alters
//     the storage behind the log's back (raw SQL on the file, raw DynamoDB calls), with which
//     the suite edits, removes, inserts and reorders records (the newest included), deletes and
//     rolls back heads, drops chains, truncates and rewrites them. Each is found by Verify, or,
//     where the log is consistent again afterwards, by audit.VerifyLog against a checkpoint
//     taken before, at the seq the suite expects.
package audittest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/usekarma/karma/shared/audit"
)

// Run runs the suite without the tamper-detection subtests.
func Run(t *testing.T, newLog func(t *testing.T) audit.Log) {
	t.Helper()
	RunWithTamper(t, newLog, nil)
}

// RunWithTamper runs the suite as parallel subtests of t; tamperer gives the Tamperer of a log
// newLog returned, and may be nil (the tamper subtests are then skipped).
func RunWithTamper(t *testing.T, newLog func(t *testing.T) audit.Log, tamperer func(t *testing.T, l audit.Log) Tamperer) {
	t.Helper()
	root := fmt.Sprintf("kat-%08x", rand.Uint32())
	withTamperer := func(run func(t *testing.T, f fixture, tp Tamperer)) func(t *testing.T, f fixture) {
		return func(t *testing.T, f fixture) {
			if tamperer == nil {
				t.Skip("no Tamperer given")
			}
			run(t, f, tamperer(t, f.log))
		}
	}
	tests := []struct {
		name string
		run  func(t *testing.T, f fixture)
	}{
		{"AppendQueryByField", testQueryByField},
		{"IdempotentAppend", testIdempotent},
		{"Chaining", testChaining},
		{"Verify", testVerify},
		{"VerifyWhileAppending", testVerifyWhileAppending},
		{"TimeRange", testTimeRange},
		{"LimitAndOrder", testLimitOrder},
		{"Pages", testPages},
		{"PagesLateRecords", testPagesLateRecords},
		{"Chains", testChains},
		{"HeadsAndRecordAt", testHeadsRecordAt},
		{"Checkpoint", testCheckpoint},
		{"TamperFoundByVerify", withTamperer(testTamperVerify)},
		{"TamperFoundByCheckpoint", withTamperer(testTamperCheckpoint)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tc.run(t, fixture{log: newLog(t), p: root + "-" + strings.ToLower(tc.name)})
		})
	}
}

// fixture is what a subtest works with: the log and its unique prefix.
type fixture struct {
	log audit.Log
	p   string
}

// t0 is the base time of every record (whole milliseconds, UTC).
var t0 = time.Date(2025, 3, 14, 15, 9, 26, 535_000_000, time.UTC)

// rec builds a record of the fixture: chain, id and the queryable fields are prefixed;
// at is an offset from t0.
func (f fixture) rec(id, chain string, at time.Duration) audit.Record {
	body, _ := json.Marshal(map[string]any{"id": f.p + "/" + id, "note": "payload of " + id, "n": 42})
	return audit.Record{
		MessageID:     f.p + "/" + id,
		Type:          "component.changed",
		Version:       1,
		Env:           "dev",
		Chain:         f.p + "/" + chain,
		Component:     f.p + "/dev/app/api",
		DeploymentID:  f.p + "-dep-1",
		CorrelationID: f.p + "-corr-1",
		CausationID:   f.p + "-cause",
		ActorKind:     "user",
		Actor:         f.p + "-alice",
		OccurredAt:    t0.Add(at),
		Body:          body,
	}
}

func (f fixture) appendN(t *testing.T, want int, recs ...audit.Record) {
	t.Helper()
	n, err := f.log.Append(t.Context(), recs...)
	if err != nil {
		t.Fatalf("Append(%d records): %v", len(recs), err)
	}
	if n != want {
		t.Fatalf("Append(%d records) = %d new, want %d", len(recs), n, want)
	}
}

func (f fixture) query(t *testing.T, q audit.Query) []audit.Record {
	t.Helper()
	out, err := f.log.Query(t.Context(), q)
	if err != nil {
		t.Fatalf("Query(%+v): %v", q, err)
	}
	return out
}

func ids(f fixture, recs []audit.Record) []string {
	out := make([]string, len(recs))
	for i, r := range recs {
		out[i] = strings.TrimPrefix(r.MessageID, f.p+"/")
	}
	return out
}

func expectIDs(t *testing.T, f fixture, what string, got []audit.Record, want ...string) {
	t.Helper()
	if g := ids(f, got); !slices.Equal(g, want) && !(len(g) == 0 && len(want) == 0) {
		t.Errorf("%s = %v, want %v", what, g, want)
	}
}

// sameContent compares everything Append does not set; bodies as JSON.
func sameContent(t *testing.T, got, want audit.Record) {
	t.Helper()
	var gb, wb bytes.Buffer
	if err := json.Compact(&gb, got.Body); err != nil {
		t.Errorf("record %s: body %q is not JSON: %v", got.MessageID, got.Body, err)
	}
	_ = json.Compact(&wb, want.Body)
	g, w := got, want
	g.Body, w.Body = nil, nil
	g.Seq, g.PrevHash, g.Hash, g.Appended = 0, "", "", 0 // Appended: the log's own key
	w.Seq, w.PrevHash, w.Hash, w.Appended = 0, "", "", 0
	if !g.OccurredAt.Equal(w.OccurredAt) {
		t.Errorf("record %s: OccurredAt %v, want %v", got.MessageID, g.OccurredAt, w.OccurredAt)
	}
	g.OccurredAt, w.OccurredAt = time.Time{}, time.Time{}
	if !reflect.DeepEqual(g, w) || gb.String() != wb.String() {
		t.Errorf("record read back differs:\n got %+v body %s\nwant %+v body %s", g, gb.String(), w, wb.String())
	}
}

// --- subtests ---

func testQueryByField(t *testing.T, f fixture) {
	a := f.rec("a", "c1", 0)
	b := f.rec("b", "c1", time.Second)
	b.Component, b.DeploymentID, b.CorrelationID, b.Actor = f.p+"/dev/db/main", f.p+"-dep-2", f.p+"-corr-2", f.p+"-bob"
	c := f.rec("c", "c2", 2*time.Second)
	c.DeploymentID = f.p + "-dep-2"
	f.appendN(t, 3, a, b, c)

	all := f.query(t, audit.Query{Component: a.Component})
	expectIDs(t, f, "by component", all, "a", "c")
	if len(all) == 2 {
		sameContent(t, all[0], a)
		sameContent(t, all[1], c)
	}
	expectIDs(t, f, "by other component", f.query(t, audit.Query{Component: b.Component}), "b")
	expectIDs(t, f, "by deployment", f.query(t, audit.Query{DeploymentID: f.p + "-dep-2"}), "b", "c")
	expectIDs(t, f, "by correlation", f.query(t, audit.Query{Correlation: f.p + "-corr-1"}), "a", "c")
	expectIDs(t, f, "by actor", f.query(t, audit.Query{Actor: f.p + "-bob"}), "b")
	expectIDs(t, f, "by component and deployment",
		f.query(t, audit.Query{Component: a.Component, DeploymentID: f.p + "-dep-2"}), "c")
	expectIDs(t, f, "by actor and correlation",
		f.query(t, audit.Query{Actor: f.p + "-alice", Correlation: f.p + "-corr-2"}))
	expectIDs(t, f, "by unknown component", f.query(t, audit.Query{Component: f.p + "/nope"}))
}

func testIdempotent(t *testing.T, f fixture) {
	a, b := f.rec("a", "c", 0), f.rec("b", "c", time.Second)
	f.appendN(t, 1, a)
	f.appendN(t, 0, a) // same message again
	changed := a
	changed.Body = json.RawMessage(`{"changed":true}`)
	f.appendN(t, 0, changed)    // same id, other content: still the first wins
	f.appendN(t, 1, a, b, b, a) // one new, duplicates inside a call count once
	got := f.query(t, audit.Query{Correlation: a.CorrelationID})
	expectIDs(t, f, "records", got, "a", "b")
	if len(got) == 2 {
		sameContent(t, got[0], a)
		if got[0].Seq != 1 || got[1].Seq != 2 {
			t.Errorf("seqs = %d, %d; want 1, 2", got[0].Seq, got[1].Seq)
		}
	}
	if err := f.log.Verify(t.Context(), a.Chain); err != nil {
		t.Errorf("Verify: %v", err)
	}
}

func testChaining(t *testing.T, f fixture) {
	// Two chains interleaved, over two Append calls.
	x1, y1, x2 := f.rec("x1", "x", 0), f.rec("y1", "y", time.Second), f.rec("x2", "x", 2*time.Second)
	y2, x3 := f.rec("y2", "y", 3*time.Second), f.rec("x3", "x", 4*time.Second)
	f.appendN(t, 3, x1, y1, x2)
	f.appendN(t, 2, y2, x3)
	got := f.query(t, audit.Query{Correlation: x1.CorrelationID})
	expectIDs(t, f, "records", got, "x1", "y1", "x2", "y2", "x3")
	last := map[string]audit.Record{}
	for _, r := range got {
		prev, ok := last[r.Chain]
		wantSeq, wantPrev := int64(1), ""
		if ok {
			wantSeq, wantPrev = prev.Seq+1, prev.Hash
		}
		if r.Seq != wantSeq || r.PrevHash != wantPrev {
			t.Errorf("%s: seq %d prev %q, want seq %d prev %q", r.MessageID, r.Seq, r.PrevHash, wantSeq, wantPrev)
		}
		if r.Hash == "" || r.Hash != r.ComputeHash(r.PrevHash) {
			t.Errorf("%s: hash %q, want ComputeHash(prev) = %q", r.MessageID, r.Hash, r.ComputeHash(r.PrevHash))
		}
		last[r.Chain] = r
	}
}

func testVerify(t *testing.T, f fixture) {
	var recs []audit.Record
	for i := range 20 {
		recs = append(recs, f.rec(fmt.Sprintf("r%02d", i), "v", time.Duration(i)*time.Millisecond))
	}
	f.appendN(t, 10, recs[:10]...)
	f.appendN(t, 10, recs[10:]...)
	if err := f.log.Verify(t.Context(), f.p+"/v"); err != nil {
		t.Errorf("Verify: %v", err)
	}
}

func testTimeRange(t *testing.T, f fixture) {
	f.appendN(t, 4, f.rec("t0", "c", 0), f.rec("t1", "c", time.Second),
		f.rec("t2", "c", 2*time.Second), f.rec("t3", "c", 3*time.Second))
	corr := f.p + "-corr-1"
	at := func(s int) time.Time { return t0.Add(time.Duration(s) * time.Second) }
	expectIDs(t, f, "since t1", f.query(t, audit.Query{Correlation: corr, Since: at(1)}), "t1", "t2", "t3")
	expectIDs(t, f, "until t2 (exclusive)", f.query(t, audit.Query{Correlation: corr, Until: at(2)}), "t0", "t1")
	expectIDs(t, f, "[t1, t3)", f.query(t, audit.Query{Correlation: corr, Since: at(1), Until: at(3)}), "t1", "t2")
	expectIDs(t, f, "since after all", f.query(t, audit.Query{Correlation: corr, Since: at(10)}))
	// Other zones denote the same instants.
	ny := time.FixedZone("UTC-5", -5*3600)
	expectIDs(t, f, "since t2 in another zone",
		f.query(t, audit.Query{Correlation: corr, Since: at(2).In(ny)}), "t2", "t3")
}

func testLimitOrder(t *testing.T, f fixture) {
	// Appended out of time order; two records share an instant (ordered by chain, then seq).
	f.appendN(t, 5,
		f.rec("late", "b", 5*time.Second),
		f.rec("tie-b", "b", 2*time.Second),
		f.rec("tie-a2", "a", 2*time.Second),
		f.rec("early", "b", 0),
		f.rec("tie-a3", "a", 2*time.Second))
	corr := f.p + "-corr-1"
	expectIDs(t, f, "all", f.query(t, audit.Query{Correlation: corr}), "early", "tie-a2", "tie-a3", "tie-b", "late")
	expectIDs(t, f, "limit 2", f.query(t, audit.Query{Correlation: corr, Limit: 2}), "early", "tie-a2")
	expectIDs(t, f, "limit 10", f.query(t, audit.Query{Correlation: corr, Limit: 10}),
		"early", "tie-a2", "tie-a3", "tie-b", "late")
	expectIDs(t, f, "since, limit 1", f.query(t, audit.Query{Correlation: corr, Since: t0.Add(time.Second), Limit: 1}), "tie-a2")
}

func testChains(t *testing.T, f fixture) {
	f.appendN(t, 3, f.rec("1", "zeta", 0), f.rec("2", "alpha", 0), f.rec("3", "zeta", 0))
	chains, err := f.log.Chains(t.Context())
	if err != nil {
		t.Fatalf("Chains: %v", err)
	}
	if !slices.IsSorted(chains) {
		t.Errorf("Chains not sorted: %v", chains)
	}
	var ours []string
	for _, c := range chains {
		if strings.HasPrefix(c, f.p+"/") {
			ours = append(ours, c)
		}
	}
	if want := []string{f.p + "/alpha", f.p + "/zeta"}; !slices.Equal(ours, want) {
		t.Errorf("Chains (ours) = %v, want %v", ours, want)
	}
}

// testVerifyWhileAppending: a chain growing while it is verified never looks tampered (a
// Verify must not hold records read before an append against a head read after it).
func testVerifyWhileAppending(t *testing.T, f fixture) {
	const n = 40
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := range n {
			if _, err := f.log.Append(t.Context(), f.rec(fmt.Sprintf("g%02d", i), "growing", time.Duration(i)*time.Millisecond)); err != nil {
				t.Errorf("Append: %v", err)
				return
			}
		}
	}()
	for verified := 0; ; verified++ {
		select {
		case <-done:
			if err := f.log.Verify(t.Context(), f.p+"/growing"); err != nil {
				t.Errorf("Verify after the appends: %v", err)
			}
			t.Logf("%d Verify calls while appending", verified)
			return
		default:
		}
		if err := f.log.Verify(t.Context(), f.p+"/growing"); err != nil {
			t.Fatalf("Verify while appending: %v", err)
		}
	}
}
