package embedded

// The graph-write stage's check and write in one transaction, one statement: WriteAtUnless reads
// the commit of an environment's stored graph with the digest the same-graph check needs
// (graphstore_same.go), asks the stage whether to write at all (its commit may be older than the
// stored one), and writes. KnownCommit lets the stage ask Git about the commits' order before the
// transaction, from what this store last saw, without a statement; the stage checks its guess
// against what WriteAtUnless reads.

import (
	"context"
	"fmt"

	"github.com/usekarma/karma/shared/graph"
)

// WriteAtUnless is WriteAt of env's graph g built at commit, unless skip, given the commit env's
// graph was last written at ("" when none is known), reports true: then nothing is written. The
// read, skip's decision and the write are one transaction (the one ctx carries, when it carries
// one), so no other write comes between the commit skip was shown and the write.
func (s *GraphStore) WriteAtUnless(ctx context.Context, g *graph.Graph, env, commit string, skip func(stored string) (bool, error)) (graph.WriteStats, error) {
	if commit == "" {
		return graph.WriteStats{}, fmt.Errorf("embedded: graph write of %s: no commit", env)
	}
	var st graph.WriteStats
	err := s.db.Atomically(ctx, func(ctx context.Context) error {
		var digest, stored string
		if err := s.db.conn(ctx).QueryRowContext(ctx, `SELECT coalesce((SELECT digest FROM graph_meta WHERE env = ?1), ''),
			coalesce((SELECT commit_sha FROM graph_commits WHERE env = ?1), '')`, env).Scan(&digest, &stored); err != nil {
			return fmt.Errorf("embedded: graph commit of %s: %w", env, err)
		}
		s.mu.Lock()
		s.commits[env] = stored
		lw, known := s.last[env]
		s.mu.Unlock()
		if no, err := skip(stored); err != nil || no {
			return err
		}
		if known && lw.g == g && lw.commit == commit && lw.digest == digest && stored == commit {
			st = graph.WriteStats{Unchanged: lw.rows, RoundTrips: 1} // written already (graphstore_same.go)
			return nil
		}
		var err error
		st, err = s.writeRows(ctx, g, []string{env}, commit)
		return err
	})
	if err != nil {
		return graph.WriteStats{}, err
	}
	return st, nil
}

// KnownCommit is the commit of env's stored graph as this store last read or wrote it, without
// asking the file: another process may have written since. ok is false when it knows nothing.
func (s *GraphStore) KnownCommit(env string) (commit string, ok bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	commit, ok = s.commits[env]
	return commit, ok
}
