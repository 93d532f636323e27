package terraform

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"

	tfjson "github.com/hashicorp/terraform-json"

	"github.com/usekarma/karma/shared/message"
)

// PlanLister lists every resource change of a saved plan. The policies asked before a plan is
// applied must see all of them: a deployment.planned lists at most message.MaxPlanResources, and
// a rule about a resource left out of the list would not be asked about it. TFExec implements it;
// Noop, whose plans list everything, does not need to.
type PlanLister interface {
	PlanResources(ctx context.Context, ws Workspace, plan PlanResult) ([]message.ResourceChange, error)
}

var _ PlanLister = (*TFExec)(nil)

// PlanResources lists every managed resource the saved plan changes — address and actions, in
// terraform's order, no values, none left out — read from the plan file as Apply would apply it:
// one of ws's own plans that still hashes to plan.PlanHash (else ErrPlanChanged), shown from a
// private copy of the bytes checked.
func (r *TFExec) PlanResources(ctx context.Context, ws Workspace, plan PlanResult) ([]message.ResourceChange, error) {
	ctx, cancel := r.stopInTime(ctx)
	defer cancel()
	s, unlock, err := r.begin(ctx, ws)
	if err != nil {
		return nil, err
	}
	defer unlock()
	dir := filepath.Join(s.ws.Root, planDir)
	if filepath.Dir(filepath.Clean(plan.PlanFile)) != dir {
		return nil, s.fail(OpVerify, fmt.Errorf("%w: %s is not a plan of this workspace (%s)", ErrPlanChanged, plan.PlanFile, dir))
	}
	data, err := os.ReadFile(plan.PlanFile)
	if err != nil {
		return nil, s.fail(OpVerify, fmt.Errorf("%w: %v", ErrPlanChanged, err))
	}
	if got := sha256hex(data); got != plan.PlanHash {
		return nil, s.fail(OpVerify, fmt.Errorf("%w: %s has sha256 %s, the reviewed plan %s", ErrPlanChanged, plan.PlanFile, got, plan.PlanHash))
	}
	copied := filepath.Join(dir, fmt.Sprintf(".show-%d.tfplan", time.Now().UnixNano()))
	if err := os.WriteFile(copied, data, 0o600); err != nil {
		return nil, s.fail(OpShow, err)
	}
	defer os.Remove(copied)
	p, err := s.showQuietly(ctx, copied)
	if err != nil {
		return nil, s.fail(OpShow, err)
	}
	return allResourceChanges(p), nil
}

// allResourceChanges lists the managed resources a plan changes, as ResourceChanges does but
// every one, and without their values.
func allResourceChanges(p *tfjson.Plan) []message.ResourceChange {
	out := []message.ResourceChange{}
	if p == nil {
		return out
	}
	for _, rc := range p.ResourceChanges {
		if rc == nil || rc.Change == nil || rc.Mode == tfjson.DataResourceMode {
			continue
		}
		a := rc.Change.Actions
		if a.NoOp() || a.Read() || len(a) == 0 {
			continue
		}
		c := message.ResourceChange{Address: rc.Address, ValuesOmitted: true}
		for _, x := range a {
			c.Actions = append(c.Actions, string(x))
		}
		out = append(out, c)
	}
	return out
}
