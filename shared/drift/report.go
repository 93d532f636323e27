package drift

import (
	"slices"
	"strings"
)

// Report is one drift run over one or more environments, all compared with one commit.
type Report struct {
	Commit string      `json:"commit"` // the deploy branch's head
	Envs   []EnvReport `json:"environments"`
}

// EnvReport is what the run found in one environment.
type EnvReport struct {
	Env string `json:"env"`
	// AllowDrift and Refresh are the environment's account flags (allow_drift, drift_refresh).
	AllowDrift bool `json:"allow_drift"`
	Refresh    bool `json:"drift_refresh"`
	// RefreshSkipped: drift_refresh is set, but this check ran no terraform (a read).
	RefreshSkipped bool `json:"refresh_skipped,omitempty"`
	Compared       int  `json:"compared"`  // components whose parameters were compared
	Refreshed      int  `json:"refreshed"` // workspaces refreshed (drift_refresh)
	// Busy are the components not compared: a change set is deploying them.
	Busy []Busy `json:"busy"`
	// RolledBack are the components whose /config a standing rollback explains (not drift).
	RolledBack []RolledBack `json:"rolled_back"`
	Findings   []Finding    `json:"findings"`
	// Errors are what could not be compared, and why (the run still reports the rest).
	Errors []string `json:"errors"`
	// Corrective is the corrective change set this run queued ("" = none).
	Corrective string `json:"corrective_change_set,omitempty"`
}

// Drifted reports whether any drift was found (new or already recorded).
func (r *Report) Drifted() bool {
	for _, e := range r.Envs {
		if len(e.Findings) > 0 {
			return true
		}
	}
	return false
}

// Failed reports whether something could not be compared.
func (r *Report) Failed() bool {
	for _, e := range r.Envs {
		if len(e.Errors) > 0 {
			return true
		}
	}
	return false
}

// sortFindings orders findings by component, then kind.
func sortFindings(fs []Finding) {
	slices.SortFunc(fs, func(a, b Finding) int {
		if c := strings.Compare(a.Component, b.Component); c != 0 {
			return c
		}
		return strings.Compare(a.Kind, b.Kind)
	})
}
