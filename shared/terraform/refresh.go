package terraform

// Refresh-only plans: the drift check's comparison of the real infrastructure with the state.
// `terraform plan -refresh-only` reads every resource and data source back from the provider and
// compares what it reads with the state, without proposing any change to the infrastructure.
// Its -detailed-exitcode verdict says whether anything moved; the saved plan, read as JSON
// (`terraform show -json`), says what: resource_drift (each resource changed or deleted outside
// Terraform, with terraform's actions) and output_changes (the module outputs the refreshed
// values change). The plan is never applied: it is written to a private file and removed.

import (
	"context"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"time"

	"github.com/hashicorp/terraform-exec/tfexec"
	tfjson "github.com/hashicorp/terraform-json"
)

// OpRefresh is the step of a failed Refresh.
const OpRefresh = "refresh"

// Refresher runs refresh-only plans. TFExec and Noop implement it.
type Refresher interface {
	Refresh(ctx context.Context, ws Workspace) (RefreshResult, error)
}

// ResourceDrift is one resource a refresh found changed outside Terraform.
type ResourceDrift struct {
	Address string   // e.g. module.component.aws_s3_bucket.this
	Actions []string // terraform's: update, delete, ...
}

// RefreshResult is what a refresh-only plan found in a workspace.
type RefreshResult struct {
	// Deployed is false when the workspace has no state (nothing was applied there): then
	// terraform did not run and nothing else is set.
	Deployed bool
	// Changed is terraform's verdict (-detailed-exitcode): the refresh changes resources or
	// outputs.
	Changed bool
	// Resources are the resources changed outside Terraform (resource_drift), by address.
	Resources []ResourceDrift
	// Outputs are the module outputs (runtime keys) whose value the refresh changed, sorted.
	Outputs []string
	// Serial and Lineage identify the state refreshed (before the refresh).
	Serial  int64
	Lineage string
}

// Refresh runs `terraform plan -refresh-only` in ws (prepared and initialised as Plan does, with
// the sensitive variables in a 0600 -var-file) and reports what changed. A workspace without
// state is not refreshed (Deployed false). Plan, Apply and Refresh on one Root never overlap.
func (r *TFExec) Refresh(ctx context.Context, ws Workspace) (RefreshResult, error) {
	ctx, cancel := r.stopInTime(ctx)
	defer cancel()
	s, unlock, err := r.begin(ctx, ws)
	if err != nil {
		return RefreshResult{}, err
	}
	defer unlock()
	s.prunePlans(ctx, "")
	if _, err := os.Stat(filepath.Join(s.ws.Root, stateFile)); os.IsNotExist(err) {
		return RefreshResult{}, nil
	}
	st, err := currentState(s.ws.Root)
	if err != nil {
		return RefreshResult{}, s.fail(OpRefresh, fmt.Errorf("reading the state: %w", err))
	}
	if s.ws, err = commitModules(s.ws, true); err != nil {
		return RefreshResult{}, s.fail(OpPrepare, err)
	}
	if _, err := Prepare(s.ws); err != nil {
		return RefreshResult{}, s.fail(OpPrepare, err)
	}
	if err := s.init(ctx); err != nil {
		return RefreshResult{}, err
	}
	plan, changed, err := s.refreshPlan(ctx)
	if err != nil {
		return RefreshResult{}, err
	}
	res := refreshResult(plan)
	res.Deployed, res.Changed, res.Serial, res.Lineage = true, changed, st.Serial, st.Lineage
	return res, nil
}

// refreshPlan runs the refresh-only plan into a private file, reads it as JSON and removes it.
func (s *session) refreshPlan(ctx context.Context) (*tfjson.Plan, bool, error) {
	dir := filepath.Join(s.ws.Root, planDir)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, false, s.fail(OpRefresh, err)
	}
	tmp := filepath.Join(dir, fmt.Sprintf(".refresh-%d.tfplan", time.Now().UnixNano()))
	defer os.Remove(tmp)
	opts, cleanup, err := s.varFile()
	if err != nil {
		return nil, false, s.fail(OpRefresh, err)
	}
	var changed bool
	err = s.command(ctx, func(ctx context.Context) (err error) {
		changed, err = s.tf.PlanJSON(ctx, s.watched(s.ui), append(opts, tfexec.RefreshOnly(true), tfexec.Out(tmp))...)
		return err
	})
	cleanup()
	if err != nil {
		return nil, false, s.fail(OpRefresh, err)
	}
	if err := os.Chmod(tmp, 0o600); err != nil {
		return nil, false, s.fail(OpRefresh, err)
	}
	plan, err := s.showQuietly(ctx, tmp)
	if err != nil {
		return nil, false, s.fail(OpShow, err)
	}
	return plan, changed, nil
}

// refreshResult reads a refresh-only plan: the drifted resources and the changed outputs. The
// root module's output "runtime" holds every module output (main.tf): its keys whose value
// changed are reported, by name only (values may be sensitive); any other root output that
// changed is reported by its own name.
func refreshResult(plan *tfjson.Plan) RefreshResult {
	var res RefreshResult
	if plan == nil {
		return res
	}
	for _, rc := range plan.ResourceDrift {
		if rc == nil || rc.Change == nil || rc.Change.Actions.NoOp() {
			continue
		}
		acts := make([]string, len(rc.Change.Actions))
		for i, a := range rc.Change.Actions {
			acts[i] = string(a)
		}
		res.Resources = append(res.Resources, ResourceDrift{Address: rc.Address, Actions: acts})
	}
	slices.SortFunc(res.Resources, func(a, b ResourceDrift) int { return strings.Compare(a.Address, b.Address) })
	keys := map[string]bool{}
	for name, ch := range plan.OutputChanges {
		if ch == nil || ch.Actions.NoOp() {
			continue
		}
		if name != "runtime" {
			keys[name] = true
			continue
		}
		for _, k := range changedKeys(ch.Before, ch.After) {
			keys[k] = true
		}
	}
	res.Outputs = slices.Sorted(maps.Keys(keys))
	return res
}

// changedKeys lists the top-level keys whose value differs between two objects (a key on one
// side only counts); a side that is not an object counts as empty.
func changedKeys(before, after any) []string {
	b, _ := before.(map[string]any)
	a, _ := after.(map[string]any)
	var out []string
	for k, v := range a {
		if old, ok := b[k]; !ok || !reflect.DeepEqual(old, v) {
			out = append(out, k)
		}
	}
	for k := range b {
		if _, ok := a[k]; !ok {
			out = append(out, k)
		}
	}
	return out
}
