package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/usekarma/karma/shared/lineage"
)

// chainView is what `karma lineage <component>` shows: the causal chain of its deployment
// (lineage.Step, nil when Karma never deployed it) and the component's drift events.
type chainView struct {
	*lineage.Step
	// Drifts are the component's drift events, newest first.
	Drifts []lineage.Drift `json:"drifts,omitempty"`
}

// backwardWithDrift is the causal chain of a deployment (or of a component's last applied or
// failed one) with the component's drift events. A component Karma never deployed but whose
// drift was recorded (a /config missing, an orphan) has the drift events only.
func backwardWithDrift(ctx context.Context, l lineage.Store, target string) (*chainView, error) {
	d, err := findDeployment(ctx, l, target)
	component := d.Component
	if err != nil {
		if !errors.Is(err, lineage.ErrNotFound) {
			return nil, err
		}
		if strings.HasPrefix(target, "dep-") {
			return nil, unknownTarget(err)
		}
		component = target
	}
	drifts, derr := l.Drifts(ctx, component)
	if derr != nil {
		return nil, derr
	}
	if err != nil {
		if len(drifts) == 0 {
			return nil, unknownTarget(err)
		}
		return &chainView{Drifts: drifts}, nil
	}
	chain, err := lineage.Backward(ctx, l, d)
	if err != nil {
		return nil, err
	}
	return &chainView{Step: chain, Drifts: drifts}, nil
}

// unknownTarget marks err, the lineage's not finding the deployment or component asked about,
// as an unknown id (exit 2, as karma retry and rollback answer one, and --server a 404); a
// deployment missing further up the chain is a broken record instead (exit 1).
func unknownTarget(err error) error { return fmt.Errorf("%w (%w)", err, errUnknownID) }

// printDrifts lists a component's drift events, newest first, with what was done about each.
func printDrifts(w io.Writer, ds []lineage.Drift) {
	if len(ds) == 0 {
		return
	}
	fmt.Fprintf(w, "drift (newest first):\n")
	for _, d := range ds {
		fmt.Fprintf(w, "  %s  %s  %s drift (%s), found by %s (%s) at %s\n", d.At.Format("2006-01-02 15:04:05Z07:00"), d.ID, d.Kind, d.Reason,
			d.Actor.Name, d.Actor.Kind, short12(d.Commit))
		fmt.Fprintf(w, "    %s\n", d.Detail)
		if d.ChangeSetID != "" {
			fmt.Fprintf(w, "    -> corrective change %s (karma lineage --forward %s)\n", d.ChangeSetID, d.ID)
		} else {
			fmt.Fprintf(w, "    reported only (allow_drift)\n")
		}
	}
}
