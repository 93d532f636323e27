package terraform

// A stale saved plan. Terraform applies a saved plan only to the state it was made from: when the
// state changed since (an apply interrupted half-way, a run outside Karma), `terraform apply`
// refuses it ("Saved plan is stale") with exit status 1 like any other failure. Apply tells the
// two apart before running terraform, the way terraform decides: the plan file records the
// serial and lineage of the state it was made from (its "tfstate" entry), and they must be the
// current state's. A stale plan is ErrPlanChanged: nothing is applied, and the caller plans again.

import (
	"archive/zip"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
)

// stateMeta is what terraform compares: the state's lineage (fixed when it is created) and its
// serial (incremented by every write).
type stateMeta struct {
	Serial  int64  `json:"serial"`
	Lineage string `json:"lineage"`
}

// planStale returns an error matching ErrPlanChanged when the saved plan (its bytes) was made from
// another state than Root's current one, else nil. When the plan's record cannot be read (a
// format this code does not know), it returns nil and leaves the decision to terraform.
func planStale(plan []byte, root string) error {
	planned, ok := plannedState(plan)
	if !ok {
		return nil
	}
	current, err := currentState(root)
	if err != nil {
		return nil
	}
	first := planned.Lineage == "" && planned.Serial == 0 // planned before any state existed
	switch {
	case !first && planned.Lineage != current.Lineage:
		return fmt.Errorf("%w: the plan was made from another state (lineage %s, now %s)", ErrPlanChanged, planned.Lineage, current.Lineage)
	case planned.Serial != current.Serial:
		return fmt.Errorf("%w: the state changed after the plan was made (state serial %d, now %d): an apply ran since, or was interrupted",
			ErrPlanChanged, planned.Serial, current.Serial)
	}
	return nil
}

// plannedState reads the state record inside a saved plan (a zip archive).
func plannedState(plan []byte) (stateMeta, bool) {
	zr, err := zip.NewReader(bytes.NewReader(plan), int64(len(plan)))
	if err != nil {
		return stateMeta{}, false
	}
	f, err := zr.Open("tfstate")
	if err != nil {
		return stateMeta{}, false
	}
	defer f.Close()
	var m stateMeta
	if err := json.NewDecoder(io.LimitReader(f, 64<<20)).Decode(&m); err != nil {
		return stateMeta{}, false
	}
	return m, true
}

// currentState reads Root's state (the local backend's file); no file is the empty state.
func currentState(root string) (stateMeta, error) {
	data, err := os.ReadFile(filepath.Join(root, stateFile))
	if errors.Is(err, os.ErrNotExist) {
		return stateMeta{}, nil
	}
	if err != nil {
		return stateMeta{}, err
	}
	var m stateMeta
	if err := json.Unmarshal(data, &m); err != nil {
		return stateMeta{}, err
	}
	return m, nil
}

// An applied plan whose outcome was lost. Once terraform applied a plan, the plan is spent: its
// file is removed and the state moved on, so applying it again finds it gone or stale — which
// would make an apply whose caller was interrupted or crashed before recording its outcome look
// like one that never happened (planned again, and in a reviewed change set held for a new
// review). Apply therefore records, right after terraform applied a plan, its hash and the state
// it left (Root/plans/applied.json); the same plan given again while the state is still that one
// was applied: its outputs are returned and terraform does not run.

// appliedFile is the record of the last plan applied in a Root.
const appliedFile = "applied.json"

type appliedRecord struct {
	PlanHash string `json:"plan_hash"`
	stateMeta
}

// recordApplied notes that the plan with hash was applied, leaving Root's current state. Best
// effort: without the record, a lost outcome makes the plan stale, as it always did.
func recordApplied(root, hash string) {
	st, err := currentState(root)
	if err != nil {
		return
	}
	data, err := json.Marshal(appliedRecord{PlanHash: hash, stateMeta: st})
	if err != nil {
		return
	}
	_ = writePrivate(filepath.Join(root, planDir, appliedFile), data)
}

// appliedAlready reports whether the plan with hash is the last one applied in Root and the state
// is still the one that apply left.
func appliedAlready(root, hash string) bool {
	data, err := os.ReadFile(filepath.Join(root, planDir, appliedFile))
	if err != nil {
		return false
	}
	var rec appliedRecord
	if json.Unmarshal(data, &rec) != nil || rec.PlanHash == "" || rec.PlanHash != hash {
		return false
	}
	st, err := currentState(root)
	return err == nil && st.Lineage != "" && st == rec.stateMeta
}

// erroredStateFile is where terraform writes the state an apply left when it could not save it
// to the backend (the state file could not be written: a full or failing disk, a permission):
// the working directory, Root.
const erroredStateFile = "errored.tfstate"

// emptiedState refuses a Root whose state file is empty while terraform.tfstate.backup holds a
// state: what `terraform init -reconfigure` (which Karma ran before) left after taking the
// state for one to migrate. Planned or applied from, every resource would be created again.
//
// It also refuses a Root holding errored.tfstate: terraform applied, could not save the state,
// and wrote it there; terraform.tfstate does not have the resources that apply made or changed,
// and a plan from it would create them again.
func emptiedState(root string) error {
	if errored := filepath.Join(root, erroredStateFile); fileExists(errored) {
		return fmt.Errorf("%s holds the state an apply left when terraform could not save it to %s: the resources it made or changed are not in the state, "+
			"and planning would create them again; push it (in %s: terraform state push %s), then remove it",
			errored, filepath.Join(root, stateFile), root, erroredStateFile)
	}
	st, err := os.Stat(filepath.Join(root, stateFile))
	if err != nil || st.Size() > 0 {
		return nil
	}
	backup := filepath.Join(root, stateFile+".backup")
	var m stateMeta
	if data, err := os.ReadFile(backup); err != nil || json.Unmarshal(data, &m) != nil || m.Lineage == "" {
		return nil
	}
	return fmt.Errorf("the state %s is empty, but %s holds state serial %d (lineage %s): "+
		"planning would create every resource again; if nothing was applied since, copy the backup over the state",
		filepath.Join(root, stateFile), backup, m.Serial, m.Lineage)
}

func fileExists(path string) bool {
	_, err := os.Lstat(path)
	return err == nil
}
