package embedded

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	"github.com/usekarma/karma/shared/changeset"
	"github.com/usekarma/karma/shared/graph"
	"github.com/usekarma/karma/shared/lineage"
	"github.com/usekarma/karma/shared/params"
)

// Serialized writes. The queue, the audit log and the runner's settlements queue up for the
// file's write lock in Go (see writeLock). A store that writes without it finds the file locked
// whenever one of them commits, and then waits in SQLite's busy handler, which sleeps 1, 2, 5,
// 10, 15, 20, 25 ... ms between attempts: under a busy pipeline those sleeps, not the work, set
// the pace (and the waiting writer can starve while the Go queue keeps the lock busy). The
// wrappers below make the other stores' writes take the same lock, so every writer of the
// process waits its turn in Go and starts the moment the file is free. Reads are not wrapped:
// in WAL mode they never wait for a writer.
//
// A wrapped write holds the lock for its whole call, and the lock is not reentrant. This
// package's ChangeSets are the exception: Create and Update take it only around their
// transactions, so Update's fn runs without it — except when it runs a second time, after
// another writer changed the document in between, inside the locked transaction
// (ChangeSets.Update). Either way fn must not write through the queue, the audit log or another
// wrapped store.

// SerializeChangeSets returns s with Create and Update taking the write lock of db's file (for
// this package's ChangeSets, only around their transactions: not while encoding or running fn,
// and not at all when fn changes nothing).
func (db *DB) SerializeChangeSets(s changeset.Store) changeset.Store {
	return lockedChangeSets{Store: s, db: db}
}

// SerializeLineage returns l with its writes taking the write lock of db's file.
func (db *DB) SerializeLineage(l lineage.Store) lineage.Store { return lockedLineage{Store: l, db: db} }

// SerializeParams returns p with Put and Delete taking the write lock of db's file.
func (db *DB) SerializeParams(p params.Store) params.Store { return lockedParams{Store: p, db: db} }

// SerializeGraph returns g with Write and WriteAt taking the write lock of db's file.
func (db *DB) SerializeGraph(g graph.Store) graph.Store { return lockedGraph{Store: g, db: db} }

type lockedChangeSets struct {
	changeset.Store
	db *DB
}

func (s lockedChangeSets) Create(ctx context.Context, cs *changeset.ChangeSet) (created bool, err error) {
	if e, ok := s.Store.(*ChangeSets); ok {
		return e.create(ctx, cs, s.lockedTx(e))
	}
	err = s.db.locked(ctx, func() error {
		created, err = s.Store.Create(ctx, cs)
		return err
	})
	return created, err
}

func (s lockedChangeSets) Update(ctx context.Context, id string, fn func(*changeset.ChangeSet) error) (out *changeset.ChangeSet, err error) {
	if e, ok := s.Store.(*ChangeSets); ok {
		return e.update(ctx, id, fn, s.lockedTx(e))
	}
	err = s.db.locked(ctx, func() error {
		out, err = s.Store.Update(ctx, id, fn)
		return err
	})
	return out, err
}

// lockedTx runs a transaction of e holding the write lock of s's file.
func (s lockedChangeSets) lockedTx(e *ChangeSets) func(context.Context, func(*sql.Tx) error) error {
	return func(ctx context.Context, write func(*sql.Tx) error) error {
		return s.db.locked(ctx, func() error { return e.db.inTx(ctx, write) })
	}
}

// Unfinished reads through the wrapped store's index when it has one (changeset.UnfinishedLister).
func (s lockedChangeSets) Unfinished(ctx context.Context, env string, components []string) ([]changeset.Queued, error) {
	return changeset.Unfinished(ctx, s.Store, env, components)
}

// Commits reads through the wrapped store's index when it has one (changeset.CommitLister),
// else from List.
func (s lockedChangeSets) Commits(ctx context.Context, env string, offset, limit int) ([]string, error) {
	if c, ok := s.Store.(changeset.CommitLister); ok {
		return c.Commits(ctx, env, offset, limit)
	}
	var out []string
	err := changeset.EachCommit(ctx, s.Store, env, func(commit string) (bool, error) {
		if offset > 0 {
			offset--
			return true, nil
		}
		out = append(out, commit)
		return len(out) < limit, nil
	})
	return out, err
}

// Finished reads through the wrapped store's index when it has one (changeset.FinishedLister).
func (s lockedChangeSets) Finished(ctx context.Context, ids []string) ([]string, error) {
	return changeset.Finished(ctx, s.Store, ids)
}

// LastApplied reads through the wrapped store when it can (changeset.AppliedReader), else from
// List.
func (s lockedChangeSets) LastApplied(ctx context.Context, env, component string) (*changeset.Node, error) {
	got, err := changeset.LastApplied(ctx, s.Store, env, []string{component})
	if err != nil {
		return nil, err
	}
	return got[component], nil
}

// LastAppliedOf reads through the wrapped store (changeset.AppliedBatchReader when it is one).
func (s lockedChangeSets) LastAppliedOf(ctx context.Context, env string, components []string) (map[string]*changeset.Node, error) {
	return changeset.LastApplied(ctx, s.Store, env, components)
}

// Serialized: changeset.Serializer, through the wrapped store.
func (s lockedChangeSets) Serialized(ctx context.Context) bool {
	return changeset.Serialized(ctx, s.Store)
}

type lockedLineage struct {
	lineage.Store
	db *DB
}

func (l lockedLineage) RecordChange(ctx context.Context, c lineage.Change) error {
	return l.db.locked(ctx, func() error { return l.Store.RecordChange(ctx, c) })
}

func (l lockedLineage) RecordDeployment(ctx context.Context, d lineage.Deployment) error {
	return l.db.locked(ctx, func() error { return l.Store.RecordDeployment(ctx, d) })
}

func (l lockedLineage) SetOutcome(ctx context.Context, id, status, detail string, keys []string, at time.Time) error {
	return l.db.locked(ctx, func() error { return l.Store.SetOutcome(ctx, id, status, detail, keys, at) })
}

func (l lockedLineage) RecordDrift(ctx context.Context, d lineage.Drift) error {
	return l.db.locked(ctx, func() error { return l.Store.RecordDrift(ctx, d) })
}

type lockedParams struct {
	params.Store
	db *DB
}

func (p lockedParams) Put(ctx context.Context, in params.PutInput) (res params.PutResult, err error) {
	err = p.db.locked(ctx, func() error {
		res, err = p.Store.Put(ctx, in)
		return err
	})
	return res, err
}

func (p lockedParams) Delete(ctx context.Context, name string) error {
	return p.db.locked(ctx, func() error { return p.Store.Delete(ctx, name) })
}

// History reads every kept version (params.Historian), as the wrapped store does.
func (p lockedParams) History(ctx context.Context, name string) ([]params.Parameter, error) {
	h, ok := p.Store.(params.Historian)
	if !ok {
		return nil, fmt.Errorf("parameter store %T keeps no history", p.Store)
	}
	return h.History(ctx, name)
}

type lockedGraph struct {
	graph.Store
	db *DB
}

func (g lockedGraph) Write(ctx context.Context, gr *graph.Graph, envs []string) (st graph.WriteStats, err error) {
	err = g.db.locked(ctx, func() error {
		st, err = g.Store.Write(ctx, gr, envs)
		return err
	})
	return st, err
}

func (g lockedGraph) WriteAt(ctx context.Context, gr *graph.Graph, env, commit string) (st graph.WriteStats, err error) {
	err = g.db.locked(ctx, func() error {
		st, err = g.Store.WriteAt(ctx, gr, env, commit)
		return err
	})
	return st, err
}

// WriteAtUnless is the wrapped store's (GraphStore.WriteAtUnless, which holds the write lock
// through its transaction), or its Commit and WriteAt holding the lock together.
func (g lockedGraph) WriteAtUnless(ctx context.Context, gr *graph.Graph, env, commit string, skip func(stored string) (bool, error)) (st graph.WriteStats, err error) {
	if s, ok := g.Store.(*GraphStore); ok {
		return s.WriteAtUnless(ctx, gr, env, commit, skip)
	}
	err = g.db.locked(ctx, func() error {
		stored, err := g.Store.Commit(ctx, env)
		if err != nil {
			return err
		}
		if no, err := skip(stored); err != nil || no {
			return err
		}
		st, err = g.Store.WriteAt(ctx, gr, env, commit)
		return err
	})
	return st, err
}

// KnownCommit is the wrapped store's (GraphStore.KnownCommit); ok is false for another store.
func (g lockedGraph) KnownCommit(env string) (string, bool) {
	if s, ok := g.Store.(*GraphStore); ok {
		return s.KnownCommit(env)
	}
	return "", false
}
