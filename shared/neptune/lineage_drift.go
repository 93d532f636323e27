package neptune

import (
	"context"
	"fmt"
	"time"

	gremlingo "github.com/apache/tinkerpop/gremlin-go/v3/driver"

	"github.com/usekarma/karma/shared/lineage"
)

// Drift labels (see the package comment).
const (
	LabelDrift   = "drift"
	LabelDrifted = "drifted"
)

// RecordDrift upserts a drift event and its drifted edge to the component: one request.
func (l *LineageStore) RecordDrift(ctx context.Context, d lineage.Drift) error {
	_, err := l.c.Run(ctx, "record drift", func(g *Source) *Traversal {
		t := g.MergeV(map[any]any{tID: l.n.id(d.ID), tLabel: LabelDrift}).
			Property(single, "ns", l.n.ns).
			Property(single, "env", d.Env).
			Property(single, "component", d.Component).
			Property(single, "kind", d.Kind).
			Property(single, "reason", d.Reason).
			Property(single, "detail", d.Detail).
			Property(single, "commit", d.Commit).
			Property(single, "parameter", d.Parameter).
			Property(single, "action", d.Action).
			Property(single, "change_set_id", d.ChangeSetID).
			Property(single, "actor", jsonString(d.Actor)).
			Property(single, "at", unixNano(d.At)).
			Property(single, "at_text", d.At.Format(time.RFC3339Nano))
		if d.Component != "" {
			t = l.upsertV(t, d.Component, LabelComponent)
			t = l.upsertE(t, d.ID, LabelDrifted, d.Component)
		}
		return t.Count()
	})
	return err
}

// Drift returns one drift event.
func (l *LineageStore) Drift(ctx context.Context, id string) (lineage.Drift, error) {
	ds, err := l.drifts(ctx, "drift", func(g *Source) *Traversal {
		return g.V(l.n.id(id)).HasLabel(LabelDrift).Has("at").ElementMap()
	})
	if err != nil {
		return lineage.Drift{}, err
	}
	if len(ds) == 0 {
		return lineage.Drift{}, fmt.Errorf("drift %s: %w", id, lineage.ErrNotFound)
	}
	return ds[0], nil
}

// Drifts lists a component's drift events, newest first.
func (l *LineageStore) Drifts(ctx context.Context, component string) ([]lineage.Drift, error) {
	return l.drifts(ctx, "drifts", func(g *Source) *Traversal {
		return g.V(l.n.id(component)).In(LabelDrifted).HasLabel(LabelDrift).Has("at").
			Order().By("at", gremlingo.Order.Desc).By(tID, gremlingo.Order.Asc).ElementMap()
	})
}

func (l *LineageStore) drifts(ctx context.Context, op string, build func(g *Source) *Traversal) ([]lineage.Drift, error) {
	res, err := l.c.Run(ctx, op, build)
	if err != nil {
		return nil, err
	}
	var out []lineage.Drift
	for _, r := range res {
		m := stringKeys(r)
		d := lineage.Drift{ID: l.n.strip(m["id"]), Env: str(m["env"]), Component: str(m["component"]), Kind: str(m["kind"]),
			Reason: str(m["reason"]), Detail: str(m["detail"]), Commit: str(m["commit"]), Parameter: str(m["parameter"]),
			Action: str(m["action"]), ChangeSetID: str(m["change_set_id"])}
		if err := firstErr(unmarshalProp(m, "actor", &d.Actor), parseTime(m, &d.At)); err != nil {
			return nil, fmt.Errorf("neptune: %s: drift %s: %w", op, d.ID, err)
		}
		out = append(out, d)
	}
	return out, nil
}
