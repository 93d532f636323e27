package terraform

// Saved plans that can no longer be applied. A saved plan holds the values of the variables it
// was planned with, SecureString values included, in clear: it is kept only while it may still be
// applied. Plan, Apply and Refresh, holding Root's lock, first remove from Root/plans
//
//   - every plan made from another state than Root's current one (stale.go): terraform refuses
//     to apply it, and so does Apply — a plan superseded by one applied since, a plan whose
//     apply failed half-way;
//   - every plan whose deployment (its record, <plan>.owner: Workspace.Owner when it was made)
//     Workspace.Spent says will never apply it — skipped (a change set rejected, expired,
//     superseded), failed (a plan the policies refused), applied by another plan, run again
//     under another deployment;
//   - what a Plan, Apply or refresh killed half-way left: temporary plans, the copy of a plan
//     being applied, sensitive -var-files, a plan's records without the plan.
//
// A plan not stale whose deployment is not known to be spent — one waiting for review, one
// whose message is still on its way to the apply stage, one made without an owner — is kept.
// SweepPlans does the same for every workspace under a work directory (a process starting).

import (
	"context"
	"encoding/json"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// PlanOwner names the deployment a plan is made for (Workspace.Owner), recorded next to the
// saved plan (<plan>.owner) for Workspace.Spent to be asked about it.
type PlanOwner struct {
	ChangeSetID  string `json:"change_set_id"`
	DeploymentID string `json:"deployment_id"`
}

// SpentFunc reports whether the plans made for deployment owner of component (its id,
// "<env>/<type>/<nickname>") can no longer be applied. It must answer false when it cannot
// tell (a store that did not answer): the plan is kept.
type SpentFunc func(ctx context.Context, component string, owner PlanOwner) bool

// ownerRecordExt ends the file Plan keeps next to a saved plan naming its PlanOwner.
const ownerRecordExt = ".owner"

func planOwnerFile(planFile string) string {
	return strings.TrimSuffix(planFile, ".tfplan") + ownerRecordExt
}

// planCompanions are the files Plan keeps next to a saved plan, by their ending.
var planCompanions = []string{".config.json", modulesRecordExt, ownerRecordExt, lockRecordExt}

// removePlan removes a saved plan and what Plan kept next to it.
func removePlan(planFile string) {
	_ = os.Remove(planFile)
	base := strings.TrimSuffix(planFile, ".tfplan")
	for _, ext := range planCompanions {
		_ = os.Remove(base + ext)
	}
}

// prunePlans removes the saved plans of Root that can no longer be applied (above), keeping keep
// (a plan file Apply is about to check itself; "" none). Called with Root locked; best effort.
func (s *session) prunePlans(ctx context.Context, keep string) {
	prunePlans(ctx, s.ws.Root, s.ws.ID(), s.ws.Spent, keep)
}

func prunePlans(ctx context.Context, root, component string, spent SpentFunc, keep string) {
	for _, f := range leftovers(root) {
		_ = os.Remove(f)
	}
	dir := filepath.Join(root, planDir)
	entries, err := os.ReadDir(dir)
	if err != nil {
		return
	}
	plans := map[string]bool{}
	for _, e := range entries {
		if name := e.Name(); strings.HasSuffix(name, ".tfplan") && !strings.HasPrefix(name, ".") {
			plans[strings.TrimSuffix(name, ".tfplan")] = true
		}
	}
	for _, e := range entries {
		name := e.Name()
		if strings.HasPrefix(name, ".") || name == appliedFile {
			continue
		}
		file := filepath.Join(dir, name)
		if !strings.HasSuffix(name, ".tfplan") {
			// A record whose plan is gone (removed by a Plan or Apply killed in between).
			for _, ext := range planCompanions {
				if base, ok := strings.CutSuffix(name, ext); ok && !plans[base] {
					_ = os.Remove(file)
				}
			}
			continue
		}
		if file == keep {
			continue
		}
		if planSpent(ctx, file, root, component, spent) {
			removePlan(file)
		}
	}
}

// planSpent reports whether the saved plan file can no longer be applied: made from another
// state than Root's, or for a deployment spent says is over.
func planSpent(ctx context.Context, file, root, component string, spent SpentFunc) bool {
	data, err := os.ReadFile(file)
	if err != nil {
		return false
	}
	if planStale(data, root) != nil {
		return true
	}
	if spent == nil {
		return false
	}
	rec, err := os.ReadFile(planOwnerFile(file))
	if err != nil {
		return false
	}
	var owner PlanOwner
	if json.Unmarshal(rec, &owner) != nil || owner.ChangeSetID == "" || owner.DeploymentID == "" {
		return false
	}
	return spent(ctx, component, owner)
}

// leftovers are the files of Root that only a Plan, Apply or Refresh running holds, left behind
// when one was killed: Root locked, none is running.
func leftovers(root string) []string {
	var out []string
	for _, pattern := range []string{
		filepath.Join(root, varFilePattern),               // the sensitive -var-file of a plan
		filepath.Join(root, planDir, ".new-*"),            // a plan being saved, a record being written
		filepath.Join(root, planDir, ".refresh-*.tfplan"), // a refresh's plan
		filepath.Join(root, planDir, ".applying.tfplan"),  // the copy of the plan being applied
		filepath.Join(root, planDir, ".show-*.tfplan"),    // the copy of a plan being listed (planresources.go)
	} {
		m, _ := filepath.Glob(pattern)
		out = append(out, m...)
	}
	return out
}

// SweepPlans removes, in every workspace under workDir (<env>/<type>/<nickname>), the saved
// plans that can no longer be applied, as the next Plan, Apply or Refresh there would: for a
// process starting, so that plans left by deployments decided while it was not running do not
// wait for the component's next deployment. A workspace whose lock another process holds is
// passed over (that process prunes it); spent may be nil (stale plans and leftovers only). It
// returns the number of plans removed.
func SweepPlans(ctx context.Context, workDir string, spent SpentFunc) (int, error) {
	roots, err := filepath.Glob(filepath.Join(workDir, "*", "*", "*", planDir))
	if err != nil {
		return 0, err
	}
	removed := 0
	for _, dir := range roots {
		if ctx.Err() != nil {
			return removed, ctx.Err()
		}
		root := filepath.Dir(dir)
		rel, err := filepath.Rel(workDir, root)
		if err != nil {
			continue
		}
		component := filepath.ToSlash(rel)
		if owner, err := os.ReadFile(filepath.Join(root, ownerFile)); err == nil {
			component = strings.TrimSpace(string(owner)) // the id the workspace was claimed by
		}
		unlock, err := tryLockRoot(root)
		if err != nil {
			continue
		}
		before := countPlans(dir)
		prunePlans(ctx, root, component, spent, "")
		removed += before - countPlans(dir)
		unlock()
	}
	return removed, nil
}

func countPlans(dir string) int {
	m, _ := filepath.Glob(filepath.Join(dir, "[^.]*.tfplan"))
	return len(m)
}

// tryLockRoot takes Root's lock if no one holds it.
func tryLockRoot(root string) (func(), error) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel() // one attempt: lockRoot tries once before looking at the context
	unlock, err := lockRoot(ctx, root)
	if errors.Is(err, context.Canceled) {
		return nil, fs.ErrExist
	}
	return unlock, err
}
