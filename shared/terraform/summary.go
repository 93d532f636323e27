package terraform

import (
	tfjson "github.com/hashicorp/terraform-json"

	"github.com/usekarma/karma/shared/message"
)

// Summarize counts the managed-resource changes of a plan (terraform show -json):
// create -> Add, update -> Change, delete -> Destroy, no-op -> NoOp, and a replacement
// (delete+create in either order) -> one Add and one Destroy. Data source reads and "forget"
// (removed from state, not destroyed) are not counted; neither are output changes.
func Summarize(p *tfjson.Plan) message.PlanSummary {
	var s message.PlanSummary
	if p == nil {
		return s
	}
	for _, rc := range p.ResourceChanges {
		if rc == nil || rc.Change == nil || rc.Mode == tfjson.DataResourceMode {
			continue
		}
		a := rc.Change.Actions
		switch {
		case a.Replace():
			s.Add++
			s.Destroy++
		case a.Create():
			s.Add++
		case a.Update():
			s.Change++
		case a.Delete():
			s.Destroy++
		case a.NoOp():
			s.NoOp++
		}
	}
	return s
}
