package neptune

import (
	"context"
	"fmt"
	"math"
	"time"

	gremlingo "github.com/apache/tinkerpop/gremlin-go/v3/driver"
	"github.com/usekarma/karma/shared/lineage"
	"github.com/usekarma/karma/shared/message"
)

// Lineage labels (see the package comment).
const (
	LabelChange     = "change"
	LabelDeployment = "deployment"
	LabelRoot       = "root"
	LabelTriggered  = "triggered"
	LabelDeploys    = "deploys"
	LabelCausedBy   = "caused_by"
	LabelRootedIn   = "rooted_in"
)

// LineageStore keeps the causal record as vertices and edges (lineage.Store).
type LineageStore struct {
	c *Client
	n namespace
}

var _ lineage.Store = (*LineageStore)(nil)

// NewLineageStore returns the lineage store of namespace o.Namespace on c (BatchSize unused).
func NewLineageStore(c *Client, o StoreOptions) *LineageStore {
	return &LineageStore{c: c, n: newNamespace(o)}
}

// rawEdgeID is the id of an edge before the namespace prefix.
func rawEdgeID(from, label, to string) string { return from + "|" + label + "|" + to }

func rootKey(kind, id string) string { return kind + ":" + id }

// causeTarget is the raw id and label of what a cause points at: the upstream deployment, or a
// root vertex.
func causeTarget(c message.Cause) (string, string) {
	if c.Kind == message.CauseDeployment {
		return c.ID, LabelDeployment
	}
	return rootKey(c.Kind, c.ID), LabelRoot
}

func unixNano(t time.Time) int64 {
	switch {
	case t.Year() < 1678:
		return math.MinInt64
	case t.Year() > 2261:
		return math.MaxInt64
	}
	return t.UnixNano()
}

// upsertV merges a vertex by id and label and stamps its namespace.
func (l *LineageStore) upsertV(t *Traversal, rawID, label string) *Traversal {
	return t.MergeV(map[any]any{tID: l.n.id(rawID), tLabel: label}).Property(single, "ns", l.n.ns)
}

func (l *LineageStore) upsertE(t *Traversal, rawFrom, label, rawTo string) *Traversal {
	return t.MergeE(map[any]any{tID: l.n.id(rawEdgeID(rawFrom, label, rawTo)), tLabel: label, dirOut: l.n.id(rawFrom), dirIn: l.n.id(rawTo)}).
		Property("ns", l.n.ns)
}

func (l *LineageStore) upsertRoot(t *Traversal, kind, id string) *Traversal {
	return l.upsertV(t, rootKey(kind, id), LabelRoot).Property(single, "kind", kind).Property(single, "ref", id)
}

// RecordChange upserts a change set, its roots and the rooted_in edges: one request.
func (l *LineageStore) RecordChange(ctx context.Context, c lineage.Change) error {
	_, err := l.c.Run(ctx, "record change", func(g *Source) *Traversal {
		t := g.MergeV(map[any]any{tID: l.n.id(c.ID), tLabel: LabelChange}).
			Property(single, "ns", l.n.ns).
			Property(single, "env", c.Env).
			Property(single, "correlation_id", c.CorrelationID).
			Property(single, "source", c.Source).
			Property(single, "root_causes", jsonString(c.RootCauses)).
			Property(single, "actor", jsonString(c.Actor)).
			Property(single, "at", unixNano(c.At)).
			Property(single, "at_text", c.At.Format(time.RFC3339Nano)).
			Property(single, "affected", jsonString(c.Affected)).
			Property(single, "rejected", c.Rejected).
			Property(single, "commit", c.Commit).
			Property(single, "queued_behind", jsonString(c.QueuedBehind))
		for _, r := range c.RootCauses {
			t = l.upsertRoot(t, r.Kind, r.ID)
			t = l.upsertE(t, c.ID, LabelRootedIn, rootKey(r.Kind, r.ID))
		}
		return t.Count()
	})
	return err
}

// RecordDeployment upserts a deployment with its edges (triggered, deploys, caused_by), creating
// what they point at when absent; an outcome already recorded (status not scheduled) is kept.
// One request.
func (l *LineageStore) RecordDeployment(ctx context.Context, d lineage.Deployment) error {
	_, err := l.c.Run(ctx, "record deployment", func(g *Source) *Traversal {
		t := g.MergeV(map[any]any{tID: l.n.id(d.ID), tLabel: LabelDeployment}).
			Property(single, "ns", l.n.ns).
			Property(single, "change_set_id", d.ChangeSetID).
			Property(single, "env", d.Env).
			Property(single, "component", d.Component).
			Property(single, "wave", int64(d.Wave)).
			Property(single, "caused_by", jsonString(d.CausedBy)).
			Property(single, "at", unixNano(d.At)).
			Property(single, "at_text", d.At.Format(time.RFC3339Nano)).
			Property(single, "actor", jsonString(d.Actor)).
			Choose(__.Values("status").Is(gremlingo.P.Neq(lineage.StatusScheduled)),
				__.Identity(),
				__.Property(single, "status", d.Status).
					Property(single, "detail", d.Detail).
					Property(single, "changed_keys", jsonString(d.ChangedKeys)))
		if d.ChangeSetID != "" {
			t = l.upsertV(t, d.ChangeSetID, LabelChange)
			t = l.upsertE(t, d.ChangeSetID, LabelTriggered, d.ID)
		}
		if d.Component != "" {
			t = l.upsertV(t, d.Component, LabelComponent)
			t = l.upsertE(t, d.ID, LabelDeploys, d.Component)
		}
		for _, c := range d.CausedBy {
			to, label := causeTarget(c)
			if label == LabelRoot {
				t = l.upsertRoot(t, c.Kind, c.ID)
			} else {
				t = l.upsertV(t, to, label)
			}
			t = l.upsertE(t, d.ID, LabelCausedBy, to).Property("keys", jsonString(c.Keys))
		}
		return t.Count()
	})
	return err
}

// SetOutcome records how a deployment ended: one request.
func (l *LineageStore) SetOutcome(ctx context.Context, id, status, detail string, keys []string, at time.Time) error {
	res, err := l.c.Run(ctx, "set outcome", func(g *Source) *Traversal {
		return g.V(l.n.id(id)).HasLabel(LabelDeployment).Has("at").
			Property(single, "status", status).
			Property(single, "detail", detail).
			Property(single, "changed_keys", jsonString(keys)).
			Property(single, "outcome_at", unixNano(at)).
			Count()
	})
	if err != nil {
		return err
	}
	if len(res) != 1 || toInt(res[0]) == 0 {
		return fmt.Errorf("deployment %s: %w", id, lineage.ErrNotFound)
	}
	return nil
}

// Change returns a change set.
func (l *LineageStore) Change(ctx context.Context, id string) (lineage.Change, error) {
	cs, err := l.changes(ctx, "change", func(g *Source) *Traversal {
		return g.V(l.n.id(id)).HasLabel(LabelChange).Has("at").ElementMap()
	})
	if err != nil {
		return lineage.Change{}, err
	}
	if len(cs) == 0 {
		return lineage.Change{}, fmt.Errorf("change %s: %w", id, lineage.ErrNotFound)
	}
	return cs[0], nil
}

// Deployment returns one deployment.
func (l *LineageStore) Deployment(ctx context.Context, id string) (lineage.Deployment, error) {
	ds, err := l.deployments(ctx, "deployment", func(g *Source) *Traversal {
		return g.V(l.n.id(id)).HasLabel(LabelDeployment).Has("at").ElementMap()
	})
	if err != nil {
		return lineage.Deployment{}, err
	}
	if len(ds) == 0 {
		return lineage.Deployment{}, fmt.Errorf("deployment %s: %w", id, lineage.ErrNotFound)
	}
	return ds[0], nil
}

// Deployments lists a component's deployments, newest first.
func (l *LineageStore) Deployments(ctx context.Context, component string) ([]lineage.Deployment, error) {
	return l.deployments(ctx, "deployments", func(g *Source) *Traversal {
		return g.V(l.n.id(component)).In(LabelDeploys).HasLabel(LabelDeployment).Has("at").
			Order().By("at", gremlingo.Order.Desc).By(tID, gremlingo.Order.Asc).ElementMap()
	})
}

// CausedBy lists the deployments one of whose causes is (kind, id), oldest first.
func (l *LineageStore) CausedBy(ctx context.Context, kind, id string) ([]lineage.Deployment, error) {
	to, _ := causeTarget(message.Cause{Kind: kind, ID: id})
	return l.deployments(ctx, "caused by", func(g *Source) *Traversal {
		return g.V(l.n.id(to)).In(LabelCausedBy).HasLabel(LabelDeployment).Has("at").
			Order().By("at", gremlingo.Order.Asc).By(tID, gremlingo.Order.Asc).ElementMap()
	})
}

// ChangesByRoot lists the change sets whose root cause is (kind, id), oldest first.
func (l *LineageStore) ChangesByRoot(ctx context.Context, kind, id string) ([]lineage.Change, error) {
	return l.changes(ctx, "changes by root", func(g *Source) *Traversal {
		return g.V(l.n.id(rootKey(kind, id))).In(LabelRootedIn).HasLabel(LabelChange).Has("at").
			Order().By("at", gremlingo.Order.Asc).By(tID, gremlingo.Order.Asc).ElementMap()
	})
}

func (l *LineageStore) changes(ctx context.Context, op string, build func(g *Source) *Traversal) ([]lineage.Change, error) {
	res, err := l.c.Run(ctx, op, build)
	if err != nil {
		return nil, err
	}
	var out []lineage.Change
	for _, r := range res {
		m := stringKeys(r)
		c := lineage.Change{ID: l.n.strip(m["id"]), Env: str(m["env"]), CorrelationID: str(m["correlation_id"]),
			Source: str(m["source"]), Rejected: str(m["rejected"]), Commit: str(m["commit"])}
		err := firstErr(
			unmarshalProp(m, "queued_behind", &c.QueuedBehind),
			unmarshalProp(m, "root_causes", &c.RootCauses),
			unmarshalProp(m, "actor", &c.Actor),
			unmarshalProp(m, "affected", &c.Affected),
			parseTime(m, &c.At))
		if err != nil {
			return nil, fmt.Errorf("neptune: %s: change %s: %w", op, c.ID, err)
		}
		out = append(out, c)
	}
	return out, nil
}

func (l *LineageStore) deployments(ctx context.Context, op string, build func(g *Source) *Traversal) ([]lineage.Deployment, error) {
	res, err := l.c.Run(ctx, op, build)
	if err != nil {
		return nil, err
	}
	var out []lineage.Deployment
	for _, r := range res {
		m := stringKeys(r)
		d := lineage.Deployment{ID: l.n.strip(m["id"]), ChangeSetID: str(m["change_set_id"]), Env: str(m["env"]),
			Component: str(m["component"]), Wave: int(toInt(m["wave"])), Status: str(m["status"]), Detail: str(m["detail"])}
		err := firstErr(
			unmarshalProp(m, "caused_by", &d.CausedBy),
			unmarshalProp(m, "changed_keys", &d.ChangedKeys),
			unmarshalProp(m, "actor", &d.Actor),
			parseTime(m, &d.At))
		if err != nil {
			return nil, fmt.Errorf("neptune: %s: deployment %s: %w", op, d.ID, err)
		}
		if len(d.ChangedKeys) == 0 {
			d.ChangedKeys = nil // as the JSON form (omitempty) has it
		}
		out = append(out, d)
	}
	return out, nil
}

func parseTime(m map[string]any, t *time.Time) error {
	s := str(m["at_text"])
	if s == "" {
		return nil
	}
	var err error
	*t, err = time.Parse(time.RFC3339Nano, s)
	return err
}

func firstErr(errs ...error) error {
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}
