package embedded

// Writing the same graph again: a digest per environment (graph_meta) lets a GraphStore that is
// given the *graph.Graph it last wrote skip the write, hashing nothing, once one query shows
// that nobody wrote another graph there since (another process, another store).

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"sort"
	"strings"

	"github.com/usekarma/karma/shared/graph"
)

// lastWrite is what a store last wrote to one environment.
type lastWrite struct {
	g      *graph.Graph
	digest string
	rows   int    // components and edges
	commit string // WriteAt's; "" after a Write
}

// envDigest is an environment's digest and row count.
type envDigest struct {
	digest string
	rows   int
}

// digestsOf is, per environment of envs, a digest of its rows' keys and hashes.
func digestsOf(envs []string, comps, edges []row) map[string]envDigest {
	lines := map[string][]string{}
	for _, rs := range [][]row{comps, edges} {
		for _, r := range rs {
			lines[r.env] = append(lines[r.env], r.key+"\x00"+r.hash)
		}
	}
	out := make(map[string]envDigest, len(envs))
	for _, env := range envs {
		l := lines[env]
		sort.Strings(l)
		sum := sha256.Sum256([]byte(strings.Join(l, "\n")))
		out[env] = envDigest{digest: hex.EncodeToString(sum[:]), rows: len(l)}
	}
	return out
}

// writeDigests records the environments' digests in the transaction that wrote their rows.
func writeDigests(ctx context.Context, tx *sql.Tx, digests map[string]envDigest) error {
	for env, d := range digests {
		if _, err := tx.ExecContext(ctx, `INSERT INTO graph_meta (env, digest) VALUES (?, ?)
			ON CONFLICT (env) DO UPDATE SET digest = excluded.digest`, env, d.digest); err != nil {
			return err
		}
	}
	return nil
}

// wrote remembers g as what this store last wrote to the environments of digests.
func (s *GraphStore) wrote(g *graph.Graph, digests map[string]envDigest, commit string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for env, d := range digests {
		s.last[env] = lastWrite{g: g, digest: d.digest, rows: d.rows, commit: commit}
		if commit != "" {
			s.commits[env] = commit
		} else {
			delete(s.commits, env) // kept or forgotten, as the rows changed or not
		}
	}
}

// same reports whether g is what this store last wrote to every one of envs and the file still
// holds exactly that (the digests match) and, for a WriteAt (commit set), records commit as
// theirs: then the write has nothing to do.
func (s *GraphStore) same(ctx context.Context, g *graph.Graph, envs []string, commit string) (graph.WriteStats, bool, error) {
	if len(envs) == 0 {
		return graph.WriteStats{}, false, nil
	}
	s.mu.Lock()
	want := make(map[string]lastWrite, len(envs))
	for _, env := range envs {
		lw, ok := s.last[env]
		if !ok || lw.g != g || commit != "" && lw.commit != commit {
			s.mu.Unlock()
			return graph.WriteStats{}, false, nil
		}
		want[env] = lw
	}
	s.mu.Unlock()
	args := make([]any, len(envs))
	for i, env := range envs {
		args[i] = env
	}
	rows, err := s.db.conn(ctx).QueryContext(ctx, `SELECT m.env, m.digest, coalesce(c.commit_sha, '') FROM graph_meta m
		LEFT JOIN graph_commits c ON c.env = m.env WHERE m.env IN (`+strings.Repeat(",?", len(envs))[1:]+`)`, args...)
	if err != nil {
		return graph.WriteStats{}, false, err
	}
	defer rows.Close()
	matched, unchanged := 0, 0
	for rows.Next() {
		var env, digest, stored string
		if err := rows.Scan(&env, &digest, &stored); err != nil {
			return graph.WriteStats{}, false, err
		}
		if lw, ok := want[env]; ok && lw.digest == digest && (commit == "" || stored == commit) {
			matched++
			unchanged += lw.rows
		}
	}
	if err := rows.Err(); err != nil {
		return graph.WriteStats{}, false, err
	}
	if matched != len(want) {
		return graph.WriteStats{}, false, nil
	}
	return graph.WriteStats{Unchanged: unchanged, RoundTrips: 1}, true, nil
}
