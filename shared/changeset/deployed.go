package changeset

import (
	"context"
	"encoding/json"
	"slices"
)

// What a component runs now, as the change sets recorded it: the node of its deployment applied
// last. The policies compare a change with it (the diff of shared/policy): a change made in
// Parameter Store has already overwritten the component's /config parameter by the time it is
// decided, so the parameter is not what the change changes; the deployment applied last is.

// AppliedReader is a Store that finds a component's deployment applied last without reading
// every change set: both stores keep, per environment and component, which change set applied
// it last, written with the outcome (shared/embedded/changesets_applied.go,
// shared/dynamo/changesets_applied.go).
type AppliedReader interface {
	// LastApplied returns the node of component in env's latest change set (CreatedAt) that
	// applied it (its Outcome recorded); nil when none did.
	LastApplied(ctx context.Context, env, component string) (*Node, error)
}

// AppliedBatchReader is an AppliedReader that answers for many components of an environment at
// once, reading each change set that applied one of them once: a change set of thousands of
// components asks for all of them, and most were applied by the same few change sets.
type AppliedBatchReader interface {
	AppliedReader
	// LastAppliedOf returns LastApplied of each of components; a component none applied is
	// absent.
	LastAppliedOf(ctx context.Context, env string, components []string) (map[string]*Node, error)
}

// LastApplied returns, for each of components, the node of env's latest change set that applied
// it (Outcome recorded: Terraform applied it); a component no change set applied is absent.
// Through the store when it can (AppliedBatchReader for many, AppliedReader), else from one List.
func LastApplied(ctx context.Context, s Store, env string, components []string) (map[string]*Node, error) {
	out := map[string]*Node{}
	if len(components) == 0 {
		return out, nil
	}
	if r, ok := s.(AppliedBatchReader); ok && len(components) > 1 {
		return r.LastAppliedOf(ctx, env, components)
	}
	if r, ok := s.(AppliedReader); ok {
		for _, c := range components {
			n, err := r.LastApplied(ctx, env, c)
			if err != nil {
				return nil, err
			}
			if n != nil {
				out[c] = n
			}
		}
		return out, nil
	}
	all, err := s.List(ctx)
	if err != nil {
		return nil, err
	}
	at := map[string]*ChangeSet{}
	for _, cs := range all {
		if cs.Env != env {
			continue
		}
		for _, c := range components {
			n := cs.Nodes[c]
			if n == nil || n.Outcome == nil {
				continue
			}
			// List is newest first; of equal times, the first listed (as rollback.Current).
			if last := at[c]; last == nil || cs.CreatedAt.After(last.CreatedAt) {
				at[c], out[c] = cs, n
			}
		}
	}
	return out, nil
}

// DeployedConfig is the config the node's deployment applied (nil for a destroy, or a node that
// did not apply): the resolved config, before references are substituted.
func (n *Node) DeployedConfig() json.RawMessage {
	switch {
	case n == nil || n.Outcome == nil || n.Destroy:
		return nil
	case len(n.Outcome.Config) > 0:
		return n.Outcome.Config
	}
	return n.Config
}

// Applied returns the components of cs's nodes that have an outcome (their deployments applied);
// nil when none has. What a store compares before and after an update (AppliedSince).
func (cs *ChangeSet) Applied() map[string]bool {
	var out map[string]bool
	for c, n := range cs.Nodes {
		if n != nil && n.Outcome != nil {
			if out == nil {
				out = map[string]bool{}
			}
			out[c] = true
		}
	}
	return out
}

// AppliedSince returns, sorted, the components of cs's nodes that have an outcome and are not in
// before (Applied of the change set as it was): the deployments an update records as applied,
// whose "applied last" pointers the stores write with it.
func (cs *ChangeSet) AppliedSince(before map[string]bool) []string {
	var out []string
	for c, n := range cs.Nodes {
		if n != nil && n.Outcome != nil && !before[c] {
			out = append(out, c)
		}
	}
	slices.Sort(out)
	return out
}
