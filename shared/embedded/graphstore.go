package embedded

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"

	"github.com/usekarma/karma/shared/graph"
)

// GraphStore keeps the component graph in the embedded file: one row per component and per edge,
// each with the hash of its JSON form, so that a write touches only what changed. Per
// environment, graph_meta keeps a digest of all of them; a store that is given again the graph
// it last wrote (the same *graph.Graph, as a cached build is) and finds the digest it wrote
// still there writes nothing and hashes nothing (graphstore_same.go).
type GraphStore struct {
	db      *DB
	mu      sync.Mutex
	last    map[string]lastWrite // by environment
	commits map[string]string    // by environment: its graph's commit, as this store last found or wrote it
}

var _ graph.Store = (*GraphStore)(nil)

// NewGraphStore creates the tables when missing.
func NewGraphStore(ctx context.Context, db *DB) (*GraphStore, error) {
	err := db.migrate(ctx,
		`CREATE TABLE IF NOT EXISTS graph_components (
			id   TEXT PRIMARY KEY,
			env  TEXT NOT NULL,
			hash TEXT NOT NULL,
			doc  TEXT NOT NULL)`,
		`CREATE INDEX IF NOT EXISTS graph_components_env ON graph_components(env)`,
		`CREATE TABLE IF NOT EXISTS graph_edges (
			from_id TEXT NOT NULL,
			to_id   TEXT NOT NULL,
			env     TEXT NOT NULL,
			hash    TEXT NOT NULL,
			doc     TEXT NOT NULL,
			PRIMARY KEY (from_id, to_id))`,
		`CREATE INDEX IF NOT EXISTS graph_edges_env ON graph_edges(env)`,
		`CREATE TABLE IF NOT EXISTS graph_meta (
			env    TEXT PRIMARY KEY,
			digest TEXT NOT NULL) WITHOUT ROWID`,
		`CREATE TABLE IF NOT EXISTS graph_commits (
			env        TEXT PRIMARY KEY,
			commit_sha TEXT NOT NULL) WITHOUT ROWID`,
	)
	if err != nil {
		return nil, err
	}
	return &GraphStore{db: db, last: map[string]lastWrite{}, commits: map[string]string{}}, nil
}

type row struct {
	key, env, hash string
	doc            []byte
}

func hashed(key, env string, v any) row {
	b, err := json.Marshal(v)
	if err != nil {
		panic("embedded: graph row: " + err.Error()) // plain data, cannot fail
	}
	sum := sha256.Sum256(b)
	return row{key: key, env: env, hash: hex.EncodeToString(sum[:]), doc: b}
}

// Write replaces the given environments' components and edges with g's, writing only rows whose
// content changed, in one transaction; an environment whose rows changed forgets its commit.
func (s *GraphStore) Write(ctx context.Context, g *graph.Graph, envs []string) (graph.WriteStats, error) {
	return s.write(ctx, g, envs, "")
}

// WriteAt is Write of env's graph built at commit, recording commit in the same transaction.
func (s *GraphStore) WriteAt(ctx context.Context, g *graph.Graph, env, commit string) (graph.WriteStats, error) {
	if commit == "" {
		return graph.WriteStats{}, fmt.Errorf("embedded: graph write of %s: no commit", env)
	}
	return s.write(ctx, g, []string{env}, commit)
}

// Commit is the commit env's graph was last written at, "" when none is known.
func (s *GraphStore) Commit(ctx context.Context, env string) (string, error) {
	var c string
	err := s.db.conn(ctx).QueryRowContext(ctx, `SELECT commit_sha FROM graph_commits WHERE env = ?`, env).Scan(&c)
	if errors.Is(err, sql.ErrNoRows) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("embedded: graph commit of %s: %w", env, err)
	}
	return c, nil
}

// write is Write, or WriteAt when commit is set.
func (s *GraphStore) write(ctx context.Context, g *graph.Graph, envs []string, commit string) (graph.WriteStats, error) {
	if st, same, err := s.same(ctx, g, envs, commit); err != nil || same {
		return st, err
	}
	return s.writeRows(ctx, g, envs, commit)
}

// writeRows is write once the graph is known not to be the one stored already.
func (s *GraphStore) writeRows(ctx context.Context, g *graph.Graph, envs []string, commit string) (graph.WriteStats, error) {
	var st graph.WriteStats
	inScope := map[string]bool{}
	for _, e := range envs {
		inScope[e] = true
	}
	var comps, edges []row
	for _, c := range g.Components {
		if inScope[c.Env] {
			comps = append(comps, hashed(c.ID, c.Env, c))
		}
	}
	for i := range g.Edges {
		env := g.Components[g.Edges[i].From].Env
		if inScope[env] {
			e := g.EdgeDoc(int32(i))
			edges = append(edges, hashed(e.From+"\x00"+e.To, env, e))
		}
	}
	digests := digestsOf(envs, comps, edges)
	err := s.db.inTx(ctx, func(tx *sql.Tx) error {
		st = graph.WriteStats{RoundTrips: 1}
		w, d, u, err := syncRows(ctx, tx, "graph_components", "id", envs, comps)
		if err != nil {
			return err
		}
		st.ComponentsWritten, st.ComponentsDeleted, st.Unchanged = w, d, u
		w, d, u, err = syncRows(ctx, tx, "graph_edges", "from_id || char(0) || to_id", envs, edges)
		if err != nil {
			return err
		}
		st.EdgesWritten, st.EdgesDeleted, st.Unchanged = w, d, st.Unchanged+u
		if err := writeCommit(ctx, tx, digests, commit); err != nil { // before the digests: it compares with them
			return err
		}
		return writeDigests(ctx, tx, digests)
	})
	if err != nil {
		return graph.WriteStats{}, fmt.Errorf("embedded: graph write: %w", err)
	}
	s.wrote(g, digests, commit)
	return st, nil
}

// writeCommit records commit as the commit of the graphs of the environments of digests, or,
// without one, forgets the commit of each whose rows changed (its digest is not the one stored,
// which writeDigests has not replaced yet).
func writeCommit(ctx context.Context, tx *sql.Tx, digests map[string]envDigest, commit string) error {
	for env, d := range digests {
		var err error
		if commit != "" {
			_, err = tx.ExecContext(ctx, `INSERT INTO graph_commits (env, commit_sha) VALUES (?, ?)
				ON CONFLICT (env) DO UPDATE SET commit_sha = excluded.commit_sha WHERE commit_sha IS NOT excluded.commit_sha`, env, commit)
		} else {
			_, err = tx.ExecContext(ctx, `DELETE FROM graph_commits WHERE env = ?1
				AND (SELECT digest FROM graph_meta WHERE env = ?1) IS NOT ?2`, env, d.digest)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// syncRows makes table's rows of envs equal to want: returns written, deleted, unchanged.
func syncRows(ctx context.Context, tx *sql.Tx, table, keyExpr string, envs []string, want []row) (int, int, int, error) {
	have := map[string]string{}
	for _, env := range envs {
		rows, err := tx.QueryContext(ctx, "SELECT "+keyExpr+", hash FROM "+table+" WHERE env = ?", env)
		if err != nil {
			return 0, 0, 0, err
		}
		for rows.Next() {
			var k, h string
			if err := rows.Scan(&k, &h); err != nil {
				rows.Close()
				return 0, 0, 0, err
			}
			have[k] = h
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return 0, 0, 0, err
		}
	}
	var upsert *sql.Stmt
	var written, unchanged int
	for _, r := range want {
		h, ok := have[r.key]
		delete(have, r.key)
		if ok && h == r.hash {
			unchanged++
			continue
		}
		if upsert == nil {
			var err error
			upsert, err = tx.PrepareContext(ctx, upsertSQL(table))
			if err != nil {
				return 0, 0, 0, err
			}
			defer upsert.Close()
		}
		args := []any{r.env, r.hash, string(r.doc)}
		if table == "graph_edges" {
			from, to, _ := strings.Cut(r.key, "\x00")
			args = append([]any{from, to}, args...)
		} else {
			args = append([]any{r.key}, args...)
		}
		if _, err := upsert.ExecContext(ctx, args...); err != nil {
			return 0, 0, 0, err
		}
		written++
	}
	for k := range have {
		var err error
		if table == "graph_edges" {
			from, to, _ := strings.Cut(k, "\x00")
			_, err = tx.ExecContext(ctx, "DELETE FROM graph_edges WHERE from_id = ? AND to_id = ?", from, to)
		} else {
			_, err = tx.ExecContext(ctx, "DELETE FROM graph_components WHERE id = ?", k)
		}
		if err != nil {
			return 0, 0, 0, err
		}
	}
	return written, len(have), unchanged, nil
}

func upsertSQL(table string) string {
	if table == "graph_edges" {
		return `INSERT INTO graph_edges (from_id, to_id, env, hash, doc) VALUES (?, ?, ?, ?, ?)
			ON CONFLICT (from_id, to_id) DO UPDATE SET env = excluded.env, hash = excluded.hash, doc = excluded.doc`
	}
	return `INSERT INTO graph_components (id, env, hash, doc) VALUES (?, ?, ?, ?)
		ON CONFLICT (id) DO UPDATE SET env = excluded.env, hash = excluded.hash, doc = excluded.doc`
}

// Read returns the stored graph.
func (s *GraphStore) Read(ctx context.Context) (*graph.Graph, error) {
	d := graph.Document{Format: graph.FormatV1}
	rows, err := s.db.conn(ctx).QueryContext(ctx, "SELECT doc FROM graph_components ORDER BY id")
	if err != nil {
		return nil, fmt.Errorf("embedded: graph read: %w", err)
	}
	for rows.Next() {
		var b []byte
		var c graph.Component
		if err := rows.Scan(&b); err != nil {
			rows.Close()
			return nil, err
		}
		if err := json.Unmarshal(b, &c); err != nil {
			rows.Close()
			return nil, fmt.Errorf("embedded: graph read: component row: %w", err)
		}
		d.Components = append(d.Components, c)
	}
	rows.Close()
	rows, err = s.db.conn(ctx).QueryContext(ctx, "SELECT doc FROM graph_edges ORDER BY from_id, to_id")
	if err != nil {
		return nil, fmt.Errorf("embedded: graph read: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var b []byte
		var e graph.EdgeDoc
		if err := rows.Scan(&b); err != nil {
			return nil, err
		}
		if err := json.Unmarshal(b, &e); err != nil {
			return nil, fmt.Errorf("embedded: graph read: edge row: %w", err)
		}
		d.Edges = append(d.Edges, e)
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	return graph.FromDocument(d)
}
