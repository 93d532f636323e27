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
