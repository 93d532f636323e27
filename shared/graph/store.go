package graph

import "context"

// WriteStats says what a Store.Write changed.
type WriteStats struct {
	ComponentsWritten int `json:"components_written"`
	ComponentsDeleted int `json:"components_deleted"`
	EdgesWritten      int `json:"edges_written"`
	EdgesDeleted      int `json:"edges_deleted"`
	Unchanged         int `json:"unchanged"`   // components and edges already as given
	RoundTrips        int `json:"round_trips"` // requests to the backing store
}

// Store persists graphs. Implementations: embedded (SQLite) and Neptune (Gremlin).
//
// Contract (checked by one conformance suite for every implementation):
//   - Write replaces the stored components and edges of the given environments with g's (only
//     those environments: others are untouched), writing only what differs — a second Write of
//     the same graph changes nothing and reports zero written.
//   - WriteAt is Write of one environment's graph built at a commit, and records that commit:
//     Commit then returns it. A Write that changes an environment's graph forgets its commit
//     ("" = not known to be any commit's graph); one that changes nothing leaves it.
//   - Read returns the graph as last written, equal to what was written (Document form).
type Store interface {
	Write(ctx context.Context, g *Graph, envs []string) (WriteStats, error)
	WriteAt(ctx context.Context, g *Graph, env, commit string) (WriteStats, error)
	// Commit is the commit env's graph was last written at (WriteAt), "" when none is known.
	Commit(ctx context.Context, env string) (string, error)
	Read(ctx context.Context) (*Graph, error)
}
