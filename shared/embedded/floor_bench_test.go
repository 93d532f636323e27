//go:build unix

package embedded

// The pipeline's floor (issue 12): what SQLite itself costs for the rows one change event leaves
// behind, with none of Karma's logic. cmd/karma's BenchmarkPipeline runs the real pipeline; this
// runs, on the same schema (the stores' own migrations, triggers included) and with the same
// pragmas (dsn), a plain loop of prepared statements on one connection of the driver that writes
// each event's rows: its 13 message rows (6 messages, each to its stages and to audit) inserted,
// received and deleted, their 13 idempotency keys marked, the change set created and updated 4
// times (the last update finishing it), the lineage of the change and of the deployment with its
// outcome, 6 audit records and their chain's head, the runtime and config published as parameter
// versions, the component's graph row, and the reads of the change set and the runtime that plan
// and apply cannot do without. Twice: one transaction per event, and one per 100 events.
// docs/performance.md compares it with BenchmarkPipeline.

import (
	"context"
	"database/sql"
	"fmt"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

func BenchmarkPipelineFloor(b *testing.B) {
	for _, per := range []int{1, 100} {
		b.Run(fmt.Sprintf("events-per-tx=%d", per), func(b *testing.B) { benchFloor(b, per, "") })
	}
	// What each part of the rows costs: the same loop without it, one transaction per event.
	for _, part := range floorParts {
		b.Run("events-per-tx=1/without="+part, func(b *testing.B) { benchFloor(b, 1, part) })
	}
	// The queue as a log instead (docs/performance.md, "Next levers"): each message one row,
	// written once and read by every stage it goes to, never updated or deleted; each stage keeps
	// the position it has read to, written once per batch (here once per message).
	b.Run("events-per-tx=1/queue=log", func(b *testing.B) { benchFloor(b, 1, "queue-as-log") })
	b.Run("events-per-tx=100/queue=log", func(b *testing.B) { benchFloor(b, 100, "queue-as-log") })
}

// floorParts are the parts of an event's rows: the queue's message rows and their marks, the
// audit records and heads, the change set, the lineage, the parameters with the graph row.
var floorParts = []string{"queue", "audit", "change-set", "lineage", "params"}

func benchFloor(b *testing.B, perTx int, without string) {
	ctx := context.Background()
	f := openFloor(b, without)
	b.ResetTimer()
	cpu0, start := processTimes(), time.Now()
	for i := 0; i < b.N; i += perTx {
		if err := f.events(ctx, i, min(i+perTx, b.N)); err != nil {
			b.Fatal(err)
		}
	}
	elapsed, cpu := time.Since(start), processTimes()-cpu0
	b.StopTimer()
	n := float64(b.N)
	b.ReportMetric(n/elapsed.Seconds(), "events/s")
	b.ReportMetric(float64(cpu.Microseconds())/1000/n, "cpu-ms/event")
}

// openFloor makes a state file with the stores' schema and opens it with the plain driver (no
// counting wrapper, no statement cache of ours), with the floor's statements prepared on one
// connection.
func openFloor(tb testing.TB, without string) *floor {
	tb.Helper()
	ctx := context.Background()
	path := filepath.Join(tb.TempDir(), "karma.db")
	db, err := Open(path)
	if err != nil {
		tb.Fatal(err)
	}
	// The schema, exactly as the stores make it.
	for _, mk := range []func() error{
		func() error { _, err := NewQueue(ctx, db, QueueOptions{}); return err },
		func() error { _, err := NewSeen(ctx, db); return err },
		func() error { _, err := NewChangeSets(ctx, db); return err },
		func() error { _, err := NewLineage(ctx, db); return err },
		func() error { _, err := NewAuditLog(ctx, db); return err },
		func() error { _, err := NewGraphStore(ctx, db); return err },
		func() error { return CreateParamTables(db) },
	} {
		if err := mk(); err != nil {
			tb.Fatal(err)
		}
	}
	db.Close()
	plain, err := sql.Open("sqlite", dsn(path))
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { plain.Close() })
	plain.SetMaxOpenConns(1)
	// The queue as a log (queue=log): not Karma's schema, the shape it could take.
	if _, err := plain.ExecContext(ctx, `CREATE TABLE floor_log (seq INTEGER PRIMARY KEY, id TEXT NOT NULL, body BLOB NOT NULL);
		CREATE TABLE floor_offsets (stage TEXT PRIMARY KEY, seq INTEGER NOT NULL) WITHOUT ROWID`); err != nil {
		tb.Fatal(err)
	}
	// 50 sites, as BenchmarkPipeline; their graph rows and the runtime they read exist beforehand.
	for s := range 50 {
		if _, err := plain.ExecContext(ctx, `INSERT INTO graph_components (id, env, hash, doc) VALUES (?, 'prod', '', '{}')`, site(s)); err != nil {
			tb.Fatal(err)
		}
	}
	if _, err := plain.ExecContext(ctx, floorParam, "/iac/serverless-api/public/runtime", `{"api_domain":"api.example.com"}`, time.Now().UnixNano()); err != nil {
		tb.Fatal(err)
	}
	f, err := newFloor(ctx, plain, without) // (holds the pool's one connection from now on)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(f.close)
	return f
}

// The floor keeps writing what the stores' schema accepts: a few events of every variant, and
// the rows they leave.
func TestPipelineFloorWritesTheStoresRows(t *testing.T) {
	ctx := context.Background()
	for _, without := range append([]string{"", "queue-as-log"}, floorParts...) {
		f := openFloor(t, without)
		if err := f.events(ctx, 0, 3); err != nil {
			t.Fatalf("without %q: %v", without, err)
		}
		count := func(q string) int {
			var n int
			if err := f.conn.QueryRowContext(ctx, q).Scan(&n); err != nil {
				t.Fatal(err)
			}
			return n
		}
		if without == "" {
			// Every message acknowledged, every key marked, every change set finished (its node
			// rows gone by the stores' trigger), 18 audit records, 2 parameter versions per event.
			for q, want := range map[string]int{
				`SELECT count(*) FROM messages`:                               0,
				`SELECT count(*) FROM handled`:                                39,
				`SELECT count(*) FROM change_sets WHERE done = 1`:             3,
				`SELECT count(*) FROM change_set_nodes`:                       0,
				`SELECT count(*) FROM audit`:                                  18,
				`SELECT count(*) FROM lineage_causes`:                         3,
				`SELECT count(*) FROM params_history WHERE name LIKE '%www%'`: 6,
			} {
				if got := count(q); got != want {
					t.Errorf("%s: %d, want %d", q, got, want)
				}
			}
		}
	}
}

func site(s int) string { return fmt.Sprintf("prod/serverless-site/www-%02d", s%50) }

// floor holds the prepared statements of one event's rows; without names a part it leaves out
// (floorParts), or is "queue-as-log": the message rows replaced by a log and positions.
type floor struct {
	conn    *sql.Conn
	stmts   map[string]*sql.Stmt
	without string
}

const (
	floorSend      = `INSERT INTO messages (id, queue, body, sent_at, visible_at) VALUES (?, ?, ?, ?, ?)`
	floorReceive   = `UPDATE messages SET receive_count = receive_count + 1, receipt = ?, visible_at = ? WHERE seq = ?`
	floorAck       = `DELETE FROM messages WHERE seq = ?`
	floorMark      = `INSERT INTO handled (key) VALUES (?)`
	floorCSCreate  = `INSERT INTO change_sets (id, created_at, doc, env) VALUES (?, ?, ?, 'prod')`
	floorCSUpdate  = `UPDATE change_sets SET doc = ? WHERE id = ?`
	floorCSDone    = `UPDATE change_sets SET doc = ?, done = 1 WHERE id = ?`
	floorCSRead    = `SELECT doc FROM change_sets WHERE id = ?`
	floorLinChange = `INSERT INTO lineage_changes (id, at, doc) VALUES (?, ?, ?)`
	floorLinDeploy = `INSERT INTO lineage_deployments (id, component, at, doc) VALUES (?, ?, ?, ?)`
	floorLinOutcom = `UPDATE lineage_deployments SET doc = json_set(doc, '$.outcome', json(?)) WHERE id = ?`
	floorAudit     = `INSERT INTO audit (message_id, chain, seq, type, version, env, component, deployment_id, correlation_id,
		causation_id, actor_kind, actor, occurred_at, body, prev_hash, hash) VALUES (?, ?, ?, ?, 1, 'prod', ?, ?, ?, ?, 'cli', 'bench', ?, ?, ?, ?)`
	floorHead  = `INSERT INTO audit_heads (chain, seq, hash) VALUES (?, ?, ?) ON CONFLICT (chain) DO UPDATE SET seq = excluded.seq, hash = excluded.hash`
	floorParam = `INSERT INTO params_history (account, name, value, type, tier, version, modified_at)
		SELECT 'prod', ?1, ?2, 'String', 'Standard', coalesce((SELECT version FROM params WHERE account = 'prod' AND name = ?1), 0) + 1, ?3`
	floorParamRead = `SELECT value FROM params WHERE account = 'prod' AND name = ?`
	floorGraph     = `UPDATE graph_components SET hash = ?, doc = ? WHERE id = ?`
	floorLog       = `INSERT INTO floor_log (id, body) VALUES (?, ?)`
	floorOffset    = `INSERT INTO floor_offsets (stage, seq) VALUES (?, ?) ON CONFLICT (stage) DO UPDATE SET seq = excluded.seq`
)

func newFloor(ctx context.Context, db *sql.DB, without string) (*floor, error) {
	conn, err := db.Conn(ctx)
	if err != nil {
		return nil, err
	}
	f := &floor{conn: conn, stmts: map[string]*sql.Stmt{}, without: without}
	for _, q := range []string{floorSend, floorReceive, floorAck, floorMark, floorCSCreate, floorCSUpdate, floorCSDone, floorCSRead,
		floorLinChange, floorLinDeploy, floorLinOutcom, floorAudit, floorHead, floorParam, floorParamRead, floorGraph, floorLog, floorOffset} {
		st, err := conn.PrepareContext(ctx, q)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", strings.Fields(q)[0], err)
		}
		f.stmts[q] = st
	}
	return f, nil
}

func (f *floor) close() {
	for _, st := range f.stmts {
		_ = st.Close()
	}
	_ = f.conn.Close()
}

// events writes the rows of change events from to to-1 in one transaction: BEGIN and COMMIT
// on the floor's connection, around its prepared statements (no database/sql transaction
// wrapping each statement).
func (f *floor) events(ctx context.Context, from, to int) error {
	if _, err := f.conn.ExecContext(ctx, "BEGIN IMMEDIATE"); err != nil {
		return err
	}
	for e := from; e < to; e++ {
		if err := f.event(ctx, e); err != nil {
			_, _ = f.conn.ExecContext(ctx, "ROLLBACK")
			return fmt.Errorf("event %d: %w", e, err)
		}
	}
	_, err := f.conn.ExecContext(ctx, "COMMIT")
	return err
}

// event writes the rows of change event e.
func (f *floor) event(ctx context.Context, e int) error {
	exec := func(q string, args ...any) (sql.Result, error) { return f.stmts[q].ExecContext(ctx, args...) }
	read := func(q string, args ...any) error {
		var v string
		return f.stmts[q].QueryRowContext(ctx, args...).Scan(&v)
	}
	now := time.Now().UnixNano()
	comp, cs, dep := site(e), fmt.Sprintf("cs-%08d", e), fmt.Sprintf("dep-%08d", e)

	// The messages: sent to their stage and to audit, received, acknowledged, marked.
	types := []string{"change.detected", "change.resolved", "deployment.scheduled", "deployment.recorded", "deployment.planned", "deployment.applied"}
	for m, typ := range types {
		id := fmt.Sprintf("%08d-%d", e, m)
		body := floorEnvelope(id, typ, comp, dep)
		if f.without == "queue-as-log" {
			res, err := exec(floorLog, id, body)
			if err != nil {
				return err
			}
			seq, err := res.LastInsertId()
			if err != nil {
				return err
			}
			if _, err := exec(floorOffset, typ, seq); err != nil {
				return err
			}
		}
		dests := []string{"stage", "audit"}
		if typ == "deployment.applied" {
			dests = append(dests, "graph-write") // (resolve and graph-write both take it)
		}
		for _, q := range dests {
			if f.without == "queue" || f.without == "queue-as-log" {
				break
			}
			res, err := exec(floorSend, id, q, body, now, now)
			if err != nil {
				return err
			}
			seq, err := res.LastInsertId()
			if err != nil {
				return err
			}
			if _, err := exec(floorReceive, fmt.Sprintf("%d.r", seq), now+int64(time.Minute), seq); err != nil {
				return err
			}
			if _, err := exec(floorAck, seq); err != nil {
				return err
			}
			if _, err := exec(floorMark, q+"|"+typ+":"+id); err != nil {
				return err
			}
		}
		// Audit: the record, its chain's head.
		if f.without == "audit" {
			continue
		}
		if _, err := exec(floorAudit, id, comp, e*6+m+1, typ, comp, dep, cs, id, now, body, strings.Repeat("a", 64), strings.Repeat("b", 64)); err != nil {
			return err
		}
		if _, err := exec(floorHead, comp, e*6+m+1, strings.Repeat("b", 64)); err != nil {
			return err
		}
	}
	if f.without != "change-set" {
		if err := f.changeSet(exec, read, cs, comp, dep, now); err != nil {
			return err
		}
	}
	if f.without != "lineage" {
		if err := f.lineage(exec, cs, comp, dep, now); err != nil {
			return err
		}
	}
	if f.without != "params" {
		return f.params(exec, read, e, comp, now)
	}
	return nil
}

type (
	floorExec func(q string, args ...any) (sql.Result, error)
	floorRead func(q string, args ...any) error
)

// changeSet: created, announced, planned, applying, applied (finished); plan and apply read it.
func (f *floor) changeSet(exec floorExec, read floorRead, cs, comp, dep string, now int64) error {
	if _, err := exec(floorCSCreate, cs, now, floorChangeSet(cs, comp, dep, "scheduled")); err != nil {
		return err
	}
	for _, state := range []string{"announced", "planned", "applying"} {
		if state != "announced" {
			if err := read(floorCSRead, cs); err != nil {
				return err
			}
		}
		if _, err := exec(floorCSUpdate, floorChangeSet(cs, comp, dep, state), cs); err != nil {
			return err
		}
	}
	_, err := exec(floorCSDone, floorChangeSet(cs, comp, dep, "applied"), cs)
	return err
}

// lineage: the change, the deployment, its outcome.
func (f *floor) lineage(exec floorExec, cs, comp, dep string, now int64) error {
	causes := fmt.Sprintf(`[{"kind":"request","id":%q}]`, cs)
	if _, err := exec(floorLinChange, cs, now, `{"id":"`+cs+`","root_causes":`+causes+`}`); err != nil {
		return err
	}
	if _, err := exec(floorLinDeploy, dep, comp, now, `{"id":"`+dep+`","component":"`+comp+`","caused_by":`+causes+`}`); err != nil {
		return err
	}
	_, err := exec(floorLinOutcom, `{"status":"applied","runtime_version":1}`, dep)
	return err
}

// params: the graph row; the upstream runtime read by plan and apply; the runtime and config
// published.
func (f *floor) params(exec floorExec, read floorRead, e int, comp string, now int64) error {
	if _, err := exec(floorGraph, fmt.Sprintf("%064d", e), floorConfig, comp); err != nil {
		return err
	}
	for range 2 {
		if err := read(floorParamRead, "/iac/serverless-api/public/runtime"); err != nil {
			return err
		}
	}
	for _, kind := range []string{"runtime", "config"} {
		name := "/iac/" + strings.TrimPrefix(comp, "prod/") + "/" + kind
		if _, err := exec(floorParam, name, floorConfig, now); err != nil {
			return err
		}
	}
	return nil
}

const floorConfig = `{"api_origin":"${serverless-api/public.runtime.api_domain}","error_document":"404.html","index_document":"index.html","minimum_tls_version":"TLSv1.2_2021","price_class":"PriceClass_100","revision":0,"route53_zone_nickname":"main","security_headers":true,"site_name":"www.example.com","tags":{"Owner":"web-team","Project":"karma-examples"}}`

// floorChangeSet is a change set document of BenchmarkPipeline's size (about 1.1 KB).
func floorChangeSet(id, comp, dep, state string) string {
	return `{"id":"` + id + `","env":"prod","correlation_id":"` + id + `","source":"request","root_causes":[{"kind":"request","id":"` + id +
		`"}],"actor":{"kind":"cli","name":"bench"},"auto_approve":true,"approved":true,"approved_by":"auto-approve","created_at":"2026-12-03T19:56:31.519623479Z","waves":[["` +
		comp + `"]],"nodes":{"` + comp + `":{"component":"` + comp + `","wave":0,"root":true,"config":` + floorConfig +
		`,"config_hash":"e0a8df3104d99c9a87abff826a2f4f031f710e176b481c5660379fce11204cd8","state":"` + state + `","deployment_id":"` + dep +
		`","causes":[{"kind":"request","id":"` + id + `"}]}},"commit":"eec94b0c85f4f13064ed4580a98961065680cada","started":true,"rules":{}}`
}

// floorEnvelope is a message of BenchmarkPipeline's size (0.6–1 KB).
func floorEnvelope(id, typ, comp, dep string) []byte {
	return []byte(`{"id":"` + id + `","type":"` + typ + `","version":1,"occurred_at":"2026-12-03T19:56:31.519Z","correlation_id":"` + id +
		`","causation_id":"` + id + `","actor":{"kind":"cli","name":"bench"},"env":"prod","idempotency_key":"` + typ + ":" + dep +
		`","payload":{"component":"` + comp + `","deployment_id":"` + dep + `","config":` + floorConfig + `}}`)
}

// processTimes is the CPU time (user + system) this process used so far.
func processTimes() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
