package embedded_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
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
	}, func(t *testing.T, l audit.Log, chain string, seq int64) {
		mu.Lock()
		db := dbs[l]
		mu.Unlock()
		tamperAudit(t, db, chain, seq)
	})
}

// All subtests on one file: queries and chains must not see each other's records.
func TestAuditLogConformanceSharedFile(t *testing.T) {
	db := queueTestDB(t, "")
	l := newTestAuditLog(t, db)
	audittest.RunWithTamper(t, func(t *testing.T) audit.Log { return l },
		func(t *testing.T, _ audit.Log, chain string, seq int64) { tamperAudit(t, db, chain, seq) })
}

// tamperAudit edits a stored body behind the log's back.
func tamperAudit(t *testing.T, db *embedded.DB, chain string, seq int64) {
	t.Helper()
	res, err := db.SQL.Exec(`UPDATE audit SET body = '{"forged":true}' WHERE chain = ? AND seq = ?`, chain, seq)
	if err != nil {
		t.Fatal(err)
	}
	if n, _ := res.RowsAffected(); n != 1 {
		t.Fatalf("tamper: %d rows updated", n)
	}
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
