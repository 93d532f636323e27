package embedded_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/usekarma/karma/shared/audit"
	"github.com/usekarma/karma/shared/audit/audittest"
	"github.com/usekarma/karma/shared/embedded"
)

func newTestAuditLog(t *testing.T, db *embedded.DB) *embedded.AuditLog {
	t.Helper()
	l, err := embedded.NewAuditLog(context.Background(), db)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func TestAuditLogConformance(t *testing.T) {
	var mu sync.Mutex
	dbs := map[audit.Log]*embedded.DB{}
	audittest.RunWithTamper(t, func(t *testing.T) audit.Log {
		db := queueTestDB(t, "")
		l := newTestAuditLog(t, db)
		mu.Lock()
		dbs[l] = db
		mu.Unlock()
		return l
	}, func(t *testing.T, l audit.Log) audittest.Tamperer {
		mu.Lock()
		defer mu.Unlock()
		return sqlTamperer{dbs[l]}
	})
}

// All subtests on one file: queries and chains must not see each other's records.
func TestAuditLogConformanceSharedFile(t *testing.T) {
	db := queueTestDB(t, "")
	l := newTestAuditLog(t, db)
	audittest.RunWithTamper(t, func(t *testing.T) audit.Log { return l },
		func(*testing.T, audit.Log) audittest.Tamperer { return sqlTamperer{db} })
}

// sqlTamperer alters the audit tables with raw SQL, behind the log's back.
type sqlTamperer struct{ db *embedded.DB }

func (s sqlTamperer) exec(t *testing.T, query string, args ...any) {
	t.Helper()
	if _, err := s.db.SQL.Exec(query, args...); err != nil {
		t.Fatalf("tamper: %v\n%s", err, query)
	}
}

func (s sqlTamperer) Put(t *testing.T, r audit.Record) {
	t.Helper()
	s.exec(t, `INSERT OR REPLACE INTO audit (message_id, chain, seq, type, version, env, component, deployment_id,
		correlation_id, causation_id, actor_kind, actor, occurred_at, body, prev_hash, hash)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`, r.MessageID, r.Chain, r.Seq, r.Type, r.Version, r.Env,
		r.Component, r.DeploymentID, r.CorrelationID, r.CausationID, r.ActorKind, r.Actor, r.OccurredAt.UnixNano(),
		[]byte(r.Body), r.PrevHash, r.Hash)
}

func (s sqlTamperer) Delete(t *testing.T, chain string, seq int64) {
	t.Helper()
	s.exec(t, `DELETE FROM audit WHERE chain = ? AND seq = ?`, chain, seq)
}

func (s sqlTamperer) SetHead(t *testing.T, h audit.Head) {
	t.Helper()
	if h.Seq == 0 {
		s.exec(t, `DELETE FROM audit_heads WHERE chain = ?`, h.Chain)
		return
	}
	s.exec(t, `INSERT OR REPLACE INTO audit_heads (chain, seq, hash) VALUES (?, ?, ?)`, h.Chain, h.Seq, h.Hash)
}

func (s sqlTamperer) DropChain(t *testing.T, chain string) {
	t.Helper()
	s.exec(t, `DELETE FROM audit WHERE chain = ?`, chain)
	s.exec(t, `DELETE FROM audit_heads WHERE chain = ?`, chain)
}

func auditRecord(id, chain string, at time.Time) audit.Record {
	return audit.Record{MessageID: id, Type: "t", Version: 1, Env: "dev", Chain: chain,
		CorrelationID: "corr", ActorKind: "user", Actor: "alice", OccurredAt: at, Body: json.RawMessage(`{"a": 1}`)}
}

func TestAuditLogTamperKinds(t *testing.T) {
	ctx := t.Context()
	now := time.Now()
	for name, tc := range map[string]struct {
		sql     string
		wantSeq string
	}{
		"deleted record":   {`DELETE FROM audit WHERE chain = 'c' AND seq = 2`, "seq 2"},
		"edited actor":     {`UPDATE audit SET actor = 'mallory' WHERE chain = 'c' AND seq = 3`, "seq 3"},
		"edited time":      {`UPDATE audit SET occurred_at = occurred_at + 1 WHERE chain = 'c' AND seq = 1`, "seq 1"},
		"rehashed record":  {`UPDATE audit SET body = '{}', hash = 'x' WHERE chain = 'c' AND seq = 2`, "seq 2"},
		"swapped prev":     {`UPDATE audit SET prev_hash = '' WHERE chain = 'c' AND seq = 4`, "seq 4"},
		"renumbered first": {`UPDATE audit SET seq = 0 WHERE chain = 'c' AND seq = 1`, "seq 1"},
	} {
		t.Run(name, func(t *testing.T) {
			db := queueTestDB(t, "")
			l := newTestAuditLog(t, db)
			var recs []audit.Record
			for i, id := range []string{"m1", "m2", "m3", "m4"} {
				recs = append(recs, auditRecord(id, "c", now.Add(time.Duration(i)*time.Second)))
			}
			if n, err := l.Append(ctx, recs...); err != nil || n != 4 {
				t.Fatalf("Append = %d, %v", n, err)
			}
			if _, err := db.SQL.Exec(tc.sql); err != nil {
				t.Fatal(err)
			}
			err := l.Verify(ctx, "c")
			if !errors.Is(err, audit.ErrTampered) || !strings.Contains(err.Error(), tc.wantSeq) {
				t.Errorf("Verify = %v, want ErrTampered naming %s", err, tc.wantSeq)
			}
		})
	}
}

// Times in any zone are stored in UTC, and the stored record still hashes; bodies are kept
// byte for byte; an empty body hashes as null.
func TestAuditLogNormalization(t *testing.T) {
	ctx := t.Context()
	l := newTestAuditLog(t, queueTestDB(t, ""))
	at := time.Date(2025, 1, 2, 3, 4, 5, 6, time.FixedZone("X", 3*3600))
	r := auditRecord("z", "c", at)
	r.Body = json.RawMessage("{ \"spaced\" : [1, 2] }")
	empty := auditRecord("e", "c", at.Add(time.Second))
	empty.Body = nil
	if n, err := l.Append(ctx, r, empty); err != nil || n != 2 {
		t.Fatalf("Append = %d, %v", n, err)
	}
	got, err := l.Query(ctx, audit.Query{Actor: "alice"})
	if err != nil || len(got) != 2 {
		t.Fatalf("Query = %v, %v", got, err)
	}
	if !got[0].OccurredAt.Equal(at) || got[0].OccurredAt.Location() != time.UTC {
		t.Errorf("OccurredAt = %v, want %v in UTC", got[0].OccurredAt, at)
	}
	if string(got[0].Body) != string(r.Body) || got[1].Body != nil {
		t.Errorf("bodies = %q, %q", got[0].Body, got[1].Body)
	}
	if err := l.Verify(ctx, "c"); err != nil {
		t.Errorf("Verify: %v", err)
	}
	if err := l.Verify(ctx, "no-such-chain"); err != nil {
		t.Errorf("Verify of an empty chain: %v", err)
	}
}

func TestAuditLogValidation(t *testing.T) {
	ctx := t.Context()
	l := newTestAuditLog(t, queueTestDB(t, ""))
	good := auditRecord("ok", "c", time.Now())
	for name, mutate := range map[string]func(*audit.Record){
		"no id":     func(r *audit.Record) { r.MessageID = "" },
		"no chain":  func(r *audit.Record) { r.Chain = "" },
		"no time":   func(r *audit.Record) { r.OccurredAt = time.Time{} },
		"bad json":  func(r *audit.Record) { r.Body = json.RawMessage("{") },
		"year 3000": func(r *audit.Record) { r.OccurredAt = time.Date(3000, 1, 1, 0, 0, 0, 0, time.UTC) },
	} {
		r := auditRecord("bad", "c", time.Now())
		mutate(&r)
		// A bad record fails the whole call: the good one is not written either.
		if n, err := l.Append(ctx, good, r); err == nil || n != 0 {
			t.Errorf("%s: Append = %d, %v; want an error", name, n, err)
		}
	}
	if got, _ := l.Query(ctx, audit.Query{}); len(got) != 0 {
		t.Errorf("%d records written by failed Appends", len(got))
	}
	if chains, err := l.Chains(ctx); err != nil || chains == nil || len(chains) != 0 {
		t.Errorf("Chains of an empty log = %#v, %v", chains, err)
	}
}

// Concurrent appenders on one chain still produce one gap-free chain.
func TestAuditLogConcurrentAppend(t *testing.T) {
	ctx := t.Context()
	db := queueTestDB(t, "")
	l1, l2 := newTestAuditLog(t, db), newTestAuditLog(t, db)
	var wg sync.WaitGroup
	for w, l := range []*embedded.AuditLog{l1, l2} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 100 {
				r := auditRecord(fmt.Sprintf("w%d-%d", w, i), "c", time.Now())
				if _, err := l.Append(ctx, r); err != nil {
					t.Errorf("Append: %v", err)
					return
				}
			}
		}()
	}
	wg.Wait()
	got, err := l1.Query(ctx, audit.Query{})
	if err != nil || len(got) != 200 {
		t.Fatalf("Query = %d records, %v; want 200", len(got), err)
	}
	if err := l1.Verify(ctx, "c"); err != nil {
		t.Errorf("Verify: %v", err)
	}
}

// One Append of more records than one statement carries (appendChunk), over several chains,
// with copies of records among them and records stored before: each new record once, chained
// in argument order across the chunks, the copies skipped.
func TestAuditLogAppendManyInOneCall(t *testing.T) {
	ctx := t.Context()
	l := newTestAuditLog(t, queueTestDB(t, ""))
	now := time.Now()
	if n, err := l.Append(ctx, auditRecord("m-0", "c0", now), auditRecord("m-1", "c1", now)); err != nil || n != 2 {
		t.Fatalf("first Append = %d, %v", n, err)
	}
	var recs []audit.Record
	for i := range 1201 {
		recs = append(recs, auditRecord(fmt.Sprintf("m-%d", i), fmt.Sprintf("c%d", i%3), now))
		if i%100 == 7 {
			recs = append(recs, auditRecord(fmt.Sprintf("m-%d", i), fmt.Sprintf("c%d", i%3), now)) // a copy
		}
	}
	if n, err := l.Append(ctx, recs...); err != nil || n != 1199 {
		t.Fatalf("Append of %d records = %d new, %v; want 1199", len(recs), n, err)
	}
	got, err := l.Query(ctx, audit.Query{})
	if err != nil || len(got) != 1201 {
		t.Fatalf("Query = %d records, %v; want 1201", len(got), err)
	}
	next := map[string]int64{}
	for _, r := range got {
		var i int
		if _, err := fmt.Sscanf(r.MessageID, "m-%d", &i); err != nil || r.Chain != fmt.Sprintf("c%d", i%3) {
			t.Fatalf("record %s in chain %s", r.MessageID, r.Chain)
		}
		// records of a chain are chained in the order given: m-0, m-3, m-6, ... in c0
		if want := int64(i/3 + 1); r.Seq != want {
			t.Errorf("record %s has seq %d, want %d", r.MessageID, r.Seq, want)
		}
		next[r.Chain]++
	}
	for c, n := range next {
		if err := l.Verify(ctx, c); err != nil {
			t.Errorf("Verify(%s) over %d records: %v", c, n, err)
		}
	}
}

// A file written before audit_heads existed gets its heads from its records when the table is
// created; a head deleted afterwards is not rebuilt by the next start.
func TestAuditLogHeadsMigration(t *testing.T) {
	ctx := t.Context()
	db := queueTestDB(t, "")
	l := newTestAuditLog(t, db)
	now := time.Now()
	if _, err := l.Append(ctx, auditRecord("a1", "a", now), auditRecord("a2", "a", now), auditRecord("b1", "b", now)); err != nil {
		t.Fatal(err)
	}
	if _, err := db.SQL.Exec(`DROP TABLE audit_heads`); err != nil { // as an older version left the file
		t.Fatal(err)
	}
	l = newTestAuditLog(t, db)
	heads, err := l.Heads(ctx)
	if err != nil || len(heads) != 2 || heads[0].Chain != "a" || heads[0].Seq != 2 || heads[1].Seq != 1 {
		t.Fatalf("Heads after migrating = %v, %v", heads, err)
	}
	for _, c := range []string{"a", "b"} {
		if err := l.Verify(ctx, c); err != nil {
			t.Errorf("Verify(%s) after migrating: %v", c, err)
		}
	}
	if _, err := db.SQL.Exec(`DELETE FROM audit_heads WHERE chain = 'a'`); err != nil {
		t.Fatal(err)
	}
	l = newTestAuditLog(t, db)
	if te := audit.Broken(l.Verify(ctx, "a")); te == nil || te.Seq != 2 {
		t.Errorf("Verify after deleting a head and reopening = %v, want the missing head reported at seq 2", te)
	}
}

// A file written before the append order was kept numbers its records in the order they were
// stored, once, and appends go on after them: a reader paging it misses none.
func TestAuditLogAppendedMigration(t *testing.T) {
	ctx := t.Context()
	db := queueTestDB(t, "")
	l := newTestAuditLog(t, db)
	now := time.Now()
	if _, err := l.Append(ctx, auditRecord("a1", "a", now), auditRecord("b1", "b", now.Add(-time.Hour)), auditRecord("a2", "a", now)); err != nil {
		t.Fatal(err)
	}
	for _, stmt := range []string{`DROP INDEX audit_appended`, `ALTER TABLE audit DROP COLUMN appended`} { // as an older version left the file
		if _, err := db.SQL.Exec(stmt); err != nil {
			t.Fatal(err)
		}
	}
	l = newTestAuditLog(t, db)
	if _, err := l.Append(ctx, auditRecord("b2", "b", now.Add(-2*time.Hour))); err != nil {
		t.Fatal(err)
	}
	recs, err := l.QueryAppended(ctx, audit.Query{}, audit.AppendPos{}, math.MaxInt64)
	var got []string
	for _, r := range recs {
		got = append(got, fmt.Sprintf("%s@%d", r.MessageID, r.Appended))
	}
	if err != nil || !slices.Equal(got, []string{"a1@1", "b1@2", "a2@3", "b2@4"}) {
		t.Errorf("append order after migrating: %v, %v", got, err)
	}
	if h, err := l.Horizon(ctx); h != 4 || err != nil {
		t.Errorf("Horizon = %d, %v; want 4", h, err)
	}
	for _, c := range []string{"a", "b"} {
		if err := l.Verify(ctx, c); err != nil {
			t.Errorf("Verify(%s) after migrating: %v", c, err)
		}
	}
}

// Append will not write over the evidence: a chain whose head is missing, or behind its
// records, is refused (nothing of the call is written); a chain missing its newest record
// (head intact) is appended to after the head, so the gap stays visible.
func TestAuditLogAppendToAlteredChain(t *testing.T) {
	ctx := t.Context()
	now := time.Now()
	for name, tc := range map[string]struct {
		sql     string
		refused bool
		wantSeq int64 // where Verify reports the chain broken afterwards
	}{
		"head deleted":         {`DELETE FROM audit_heads WHERE chain = 'c'`, true, 3},
		"head rolled back":     {`UPDATE audit_heads SET seq = 2 WHERE chain = 'c'`, true, 3},
		"newest record gone":   {`DELETE FROM audit WHERE chain = 'c' AND seq = 3`, false, 3},
		"middle record gone":   {`DELETE FROM audit WHERE chain = 'c' AND seq = 2`, false, 2},
		"newest record edited": {`UPDATE audit SET actor = 'mallory' WHERE chain = 'c' AND seq = 3`, false, 3},
	} {
		t.Run(name, func(t *testing.T) {
			db := queueTestDB(t, "")
			l := newTestAuditLog(t, db)
			if _, err := l.Append(ctx, auditRecord("m1", "c", now), auditRecord("m2", "c", now), auditRecord("m3", "c", now)); err != nil {
				t.Fatal(err)
			}
			if _, err := db.SQL.Exec(tc.sql); err != nil {
				t.Fatal(err)
			}
			n, err := l.Append(ctx, auditRecord("other", "d", now), auditRecord("m4", "c", now))
			if te := audit.Broken(err); tc.refused != (te != nil) || (tc.refused && n != 0) {
				t.Fatalf("Append = %d, %v; refused with an *audit.TamperError: want %v", n, err, tc.refused)
			}
			if tc.refused {
				if recs, _ := l.Query(ctx, audit.Query{}); len(recs) > 3 {
					t.Errorf("a refused Append wrote %d records", len(recs)-3)
				}
			}
			if te := audit.Broken(l.Verify(ctx, "c")); te == nil || te.Seq != tc.wantSeq {
				t.Errorf("Verify = %v, want broken at seq %d", te, tc.wantSeq)
			}
		})
	}
}

// A record already in the log is skipped by its message id whatever chain it names now, and
// leaves no head behind for that chain; records after it in the same call are appended.
func TestAuditLogSkipsPresentRecordsWithoutHeads(t *testing.T) {
	ctx := t.Context()
	now := time.Now()
	db := queueTestDB(t, "")
	l := newTestAuditLog(t, db)
	if n, err := l.Append(ctx, auditRecord("m1", "c", now)); n != 1 || err != nil {
		t.Fatalf("Append = %d, %v", n, err)
	}
	n, err := l.Append(ctx, auditRecord("m1", "d", now), auditRecord("m1", "c", now), auditRecord("m2", "c", now))
	if n != 1 || err != nil {
		t.Fatalf("Append with present records = %d, %v; want 1 new", n, err)
	}
	heads, err := l.Heads(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(heads) != 1 || heads[0].Chain != "c" || heads[0].Seq != 2 {
		t.Errorf("heads = %+v, want only c at seq 2", heads)
	}
	if err := l.Verify(ctx, "c"); err != nil {
		t.Errorf("Verify: %v", err)
	}
}

// BenchmarkAuditAppend: the audit stage's batches (10 records over 5 chains, one Append) and
// single records, on one file.
func BenchmarkAuditAppend(b *testing.B) {
	for _, size := range []int{1, 10} {
		b.Run(fmt.Sprintf("batch of %d", size), func(b *testing.B) {
			l, err := embedded.NewAuditLog(b.Context(), queueTestDB(b, ""))
			if err != nil {
				b.Fatal(err)
			}
			now := time.Now()
			b.ResetTimer()
			for i := range b.N {
				recs := make([]audit.Record, size)
				for j := range recs {
					recs[j] = auditRecord(fmt.Sprintf("m%d-%d", i, j), fmt.Sprintf("chain-%d", j%5), now)
				}
				if _, err := l.Append(b.Context(), recs...); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.N*size)/b.Elapsed().Seconds(), "records/s")
		})
	}
}
