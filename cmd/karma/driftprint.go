package main

import (
	"fmt"
	"io"
	"strings"

	"github.com/usekarma/karma/shared/drift"
)

// printDrift writes a drift report for people: per environment what was compared, each drift
// with what was done about it, and what to run next.
func printDrift(w io.Writer, rep *drift.Report, dry bool) {
	fmt.Fprintf(w, "compared with %s, the deploy branch's head\n", short12(rep.Commit))
	var queued []string
	for _, e := range rep.Envs {
		fmt.Fprintf(w, "\n%s: %s\n", e.Env, driftSummary(e, dry))
		for _, f := range e.Findings {
			fmt.Fprintf(w, "  %-32s %-14s %-9s %s\n", f.Component, f.Kind, f.Reason, f.Detail)
			for _, r := range f.Resources {
				fmt.Fprintf(w, "  %-32s %-14s %-9s   %s: %s\n", "", "", "", r.Address, strings.Join(r.Actions, ", "))
			}
			fmt.Fprintf(w, "  %-32s %s\n", "", driftFate(f, dry))
		}
		for _, b := range e.Busy {
			fmt.Fprintf(w, "  not compared: %s (change set %s is deploying it)\n", b.Component, b.ChangeSetID)
		}
		for _, r := range e.RolledBack {
			fmt.Fprintf(w, "  rolled back: %s holds the config of %s (rollback %s, change set %s), not Git's: not drift while Git's config is the one rolled back from; a commit to it ends the rollback\n",
				r.Component, r.RolledBackTo, r.DeploymentID, r.ChangeSetID)
		}
		for _, msg := range e.Errors {
			fmt.Fprintf(w, "  error: %s\n", msg)
		}
		if e.Corrective != "" {
			queued = append(queued, e.Corrective)
		}
	}
	if len(queued) > 0 {
		fmt.Fprintf(w, "\nnext: karma plan (records the drift in the lineage and the audit log, plans the correction), then karma apply %s\n",
			strings.Join(queued, " "))
	}
}

func driftSummary(e drift.EnvReport, dry bool) string {
	s := fmt.Sprintf("%d component(s) compared", e.Compared)
	if e.Refresh {
		s += fmt.Sprintf(", %d refreshed", e.Refreshed)
	}
	n := len(e.Findings)
	switch {
	case n == 0 && len(e.Errors) == 0:
		return s + ", no drift"
	case n == 0:
		return s
	case e.AllowDrift:
		return s + fmt.Sprintf(", %d drift(s) (allow_drift: reported only)", n)
	case dry:
		return s + fmt.Sprintf(", %d drift(s) (allow_drift is false: a run that records would correct them)", n)
	}
	return s + fmt.Sprintf(", %d drift(s) (allow_drift is false: corrected)", n)
}

// driftFate says what was done about a drift: by an earlier run (Recorded, which a read such as
// GET /drift marks too), by this one, or nothing (a dry run).
func driftFate(f drift.Finding, dry bool) string {
	switch {
	case f.Recorded != nil && f.ChangeSetID != "":
		return f.DriftID + ": seen before; its corrective change " + f.ChangeSetID + " was queued then"
	case f.Recorded != nil:
		return f.DriftID + ": seen before, reported then"
	case dry:
		return f.DriftID + ": dry run, not recorded"
	case f.ChangeSetID != "":
		return f.DriftID + ": recorded; corrective change " + f.ChangeSetID + " queued"
	}
	return f.DriftID + ": recorded (reported only)"
}

func short12(sha string) string { return sha[:min(len(sha), 12)] }
