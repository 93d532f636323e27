// Package governance holds the rules a config repository sets for deploying to its environments
// (karma.json "environments" and "identities") and how people are recognised across the names
// Karma sees them by. It depends on nothing of Karma's: the model reads the rules from a
// commit's karma.json, the change set keeps a copy of them (the rules of its own commit), and
// approval (shared/changeset) applies them.
//
// The rules of an environment:
//
//   - protected: changes there are never approved without people. A change asking for
//     auto-approve (a webhook's or the CLI's --auto-approve, an API request's auto_approve) is
//     downgraded to review, and the change set records why (AutoApproveRefused).
//   - approvals: how many distinct people must approve (default 1). An approver must be someone
//     other than the change's requester and other than its commit's author (separation of
//     duties) — in every environment whose rules are written in karma.json, protected or not.
//   - approval_expiry: how long a change set may wait for its approvals (a Go duration such as
//     "72h"; absent: forever). Past it, the change set is expired: what is left of it is skipped
//     with reason "expired".
//   - auto_approve: "allowed" (the default: a change may ask for it), "never" (requests are
//     downgraded, as in a protected environment) or "always" (every change set is approved at
//     once — an unprotected sandbox). A protected environment cannot say "allowed" or "always".
package governance

import (
	"encoding/json"
	"fmt"
	"sort"
	"time"
)

// Auto-approve policies.
const (
	AutoApproveAllowed = "allowed"
	AutoApproveNever   = "never"
	AutoApproveAlways  = "always"
)

// Environment is the rules of one environment, as written in karma.json.
type Environment struct {
	// Protected: never auto-approved; every approval is checked for separation of duties.
	Protected bool `json:"protected,omitempty"`
	// Approvals is how many distinct eligible people must approve (0 = 1).
	Approvals int `json:"approvals,omitempty"`
	// ApprovalExpiry is how long a change set may wait for approval; 0 = no limit.
	ApprovalExpiry Duration `json:"approval_expiry,omitzero"`
	// AutoApprove is AutoApproveAllowed (the default when empty), AutoApproveNever or
	// AutoApproveAlways.
	AutoApprove string `json:"auto_approve,omitempty"`
}

// Settings are the governance parts of karma.json.
type Settings struct {
	// Environments maps an environment name to its rules; an environment not listed has none:
	// one approval by anyone, auto-approve allowed, no expiry.
	Environments map[string]Environment `json:"environments,omitempty"`
	// Identities maps a person to every name Karma may see them by (see identity.go).
	Identities Identities `json:"identities,omitempty"`
}

// Rules are what a change set of one environment keeps: its environment's rules and the
// identity map, as its commit's karma.json had them.
type Rules struct {
	Environment
	// Configured: karma.json lists the environment (its rules, separation of duties included,
	// apply); false: the defaults, under which anyone may approve.
	Configured bool       `json:"configured,omitempty"`
	Identities Identities `json:"identities,omitempty"`
}

// For returns the rules of env.
func (s Settings) For(env string) Rules {
	e, ok := s.Environments[env]
	return Rules{Environment: e, Configured: ok, Identities: s.Identities}
}

// Required is how many distinct approvals a change set needs.
func (e Environment) Required() int {
	if e.Approvals < 1 {
		return 1
	}
	return e.Approvals
}

// AutoApprovePolicy is AutoApprove with its default, and "never" for a protected environment.
func (e Environment) AutoApprovePolicy() string {
	switch {
	case e.Protected:
		return AutoApproveNever
	case e.AutoApprove == "":
		return AutoApproveAllowed
	}
	return e.AutoApprove
}

// Problem is one invalid setting, at its JSON pointer in karma.json.
type Problem struct {
	Pointer string
	Message string
}

// Problems reports every invalid setting at once, in a stable order.
func (s Settings) Problems() []Problem {
	var out []Problem
	names := make([]string, 0, len(s.Environments))
	for n := range s.Environments {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		out = append(out, s.Environments[n].problems("/environments/"+pointerEscape(n))...)
	}
	return append(out, s.Identities.problems("/identities")...)
}

func (e Environment) problems(ptr string) []Problem {
	var out []Problem
	bad := func(field, format string, a ...any) {
		out = append(out, Problem{Pointer: ptr + "/" + field, Message: fmt.Sprintf(format, a...)})
	}
	if e.Approvals < 0 || e.Approvals > 10 {
		bad("approvals", "%d: want 1 to 10 distinct approvers", e.Approvals)
	}
	if e.ApprovalExpiry < 0 {
		bad("approval_expiry", "%s: want a positive duration such as \"72h\"", time.Duration(e.ApprovalExpiry))
	}
	switch e.AutoApprove {
	case "", AutoApproveAllowed, AutoApproveNever, AutoApproveAlways:
	default:
		bad("auto_approve", "%q: want %q, %q or %q", e.AutoApprove, AutoApproveAllowed, AutoApproveNever, AutoApproveAlways)
	}
	if e.Protected && (e.AutoApprove == AutoApproveAllowed || e.AutoApprove == AutoApproveAlways) {
		bad("auto_approve", "%q: a protected environment is never auto-approved (leave it out, or say %q)", e.AutoApprove, AutoApproveNever)
	}
	if e.AutoApprove == AutoApproveAlways && e.Approvals > 1 {
		bad("approvals", "%d approvals in an environment that approves every change automatically", e.Approvals)
	}
	return out
}

// Duration is a time.Duration written as a Go duration string ("72h", "30m") in JSON.
type Duration time.Duration

// MarshalJSON writes the duration as a string.
func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(time.Duration(d).String()) }

// UnmarshalJSON reads a duration string.
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("want a duration such as \"72h\", found %s", b)
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return fmt.Errorf("want a duration such as \"72h\": %w", err)
	}
	*d = Duration(v)
	return nil
}

func pointerEscape(k string) string {
	out := make([]byte, 0, len(k))
	for i := 0; i < len(k); i++ {
		switch k[i] {
		case '~':
			out = append(out, "~0"...)
		case '/':
			out = append(out, "~1"...)
		default:
			out = append(out, k[i])
		}
	}
	return string(out)
}
