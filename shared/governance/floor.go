package governance

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"slices"
	"strings"
)

// The operator's floor. karma.json is part of the commit it governs: a commit that sets prod's
// "protected" to false, or lowers its "approvals", would otherwise be judged by the rules it
// wrote itself. Karma's own configuration (KARMA_GOVERNANCE, a file outside the config
// repository that only whoever runs Karma can change) may therefore name a floor of rules, in
// karma.json's shape ({"environments": {...}, "identities": {...}}): the rules a change set
// keeps are then the stricter of the floor's and its commit's (Stricter) — a commit can tighten
// them, never loosen them. Without a floor the commit's karma.json is all there is, and a change
// to it is reviewed only as far as Git's own branch protection reviews it.

// LoadFloor reads the floor from path: a JSON object with "environments" and "identities" (as in
// karma.json), every problem reported with the file and its JSON pointer; unknown fields refused.
func LoadFloor(path string) (Settings, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return Settings{}, fmt.Errorf("governance floor: %w", err)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	var s Settings
	if err := dec.Decode(&s); err != nil {
		return Settings{}, fmt.Errorf("governance floor %s: %w", path, err)
	}
	if ps := s.Problems(); len(ps) > 0 {
		msgs := make([]string, len(ps))
		for i, p := range ps {
			msgs[i] = p.Pointer + ": " + p.Message
		}
		return Settings{}, fmt.Errorf("governance floor %s: %s", path, strings.Join(msgs, "; "))
	}
	return s, nil
}

// Stricter returns the stricter of floor's and the commit's rules of one environment, rule by
// rule: protected if either is, the larger number of approvals, the shorter approval expiry
// (a limit beats none), the more restrictive auto-approve policy ("never" over "allowed" over
// "always"), and both identity maps (a name either lists for a person is theirs: more names
// make more approvers ineligible, never fewer).
// An environment the floor does not list keeps the commit's rules (with both identity maps).
func Stricter(floor, commit Rules) Rules {
	out := commit
	if !floor.Configured {
		out.Identities = mergeIdentities(floor.Identities, commit.Identities)
		return out
	}
	out.Configured = true
	out.Protected = floor.Protected || commit.Protected
	out.Approvals = max(floor.Required(), commit.Required())
	if floor.Approvals == 0 && commit.Approvals == 0 {
		out.Approvals = 0
	}
	switch {
	case floor.ApprovalExpiry <= 0:
	case commit.ApprovalExpiry <= 0 || floor.ApprovalExpiry < commit.ApprovalExpiry:
		out.ApprovalExpiry = floor.ApprovalExpiry
	}
	out.AutoApprove = stricterAuto(floor.AutoApprove, commit.AutoApprove)
	if out.Protected && out.AutoApprove != AutoApproveNever {
		out.AutoApprove = "" // a protected environment never auto-approves (AutoApprovePolicy)
	}
	out.Identities = mergeIdentities(floor.Identities, commit.Identities)
	return out
}

// stricterAuto: never > allowed (or unset) > always.
func stricterAuto(a, b string) string {
	rank := func(s string) int {
		switch s {
		case AutoApproveNever:
			return 2
		case AutoApproveAlways:
			return 0
		}
		return 1
	}
	if rank(a) > rank(b) {
		return a
	}
	if rank(b) > rank(a) {
		return b
	}
	if a == "" {
		return b
	}
	return a
}

func mergeIdentities(a, b Identities) Identities {
	if len(a) == 0 {
		return b
	}
	if len(b) == 0 {
		return a
	}
	out := Identities{}
	for _, ids := range []Identities{a, b} {
		for p, names := range ids {
			for _, n := range names {
				if !slices.Contains(out[p], n) {
					out[p] = append(out[p], n)
				}
			}
			if _, ok := out[p]; !ok {
				out[p] = []string{}
			}
		}
	}
	return out
}
