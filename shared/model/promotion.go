package model

import (
	"regexp"
	"strconv"
	"time"
)

// PromotionStep is one environment of the promotion order (karma.json "promotion") and the
// gates a change passes there. See docs/pipeline.md#promotions.
type PromotionStep struct {
	// Env is an environment of the repository (a folder iac/<env>).
	Env string `json:"env"`
	// Soak is how long a change runs here, once applied successfully, before the next
	// environment starts: a Go duration such as "30m" or "300ms"; "" = none. Not allowed on the
	// last environment, which has no next one.
	Soak string `json:"soak,omitempty"`
	// Approval: a commit's change set in this environment waits for an approval, even when the
	// change was auto-approved (karma apply <change-set>, or karma promote <change>).
	Approval bool `json:"approval,omitempty"`
}

// SoakDuration is Soak parsed (Validate has checked it); 0 when none.
func (s PromotionStep) SoakDuration() time.Duration {
	d, _ := time.ParseDuration(s.Soak)
	return d
}

// PromotionOrder is the order changes flow through environments, first to last.
type PromotionOrder []PromotionStep

// Step returns env's step, if env is in the order.
func (o PromotionOrder) Step(env string) (PromotionStep, bool) {
	for _, s := range o {
		if s.Env == env {
			return s, true
		}
	}
	return PromotionStep{}, false
}

// Path lists the environments among envs that are in the order, in the order's order: the
// environments a change concerning envs flows through, one after the other.
func (o PromotionOrder) Path(envs []string) []string {
	in := map[string]bool{}
	for _, e := range envs {
		in[e] = true
	}
	var out []string
	for _, s := range o {
		if in[s.Env] {
			out = append(out, s.Env)
		}
	}
	return out
}

var envNameRe = regexp.MustCompile(`^[^/\s]+$`)

// validate reports every problem of the order, at its JSON pointer in karma.json.
func (o PromotionOrder) validate() []error {
	var v ruleValidator
	if len(o) == 1 {
		v.bad("/promotion", "one environment promotes nowhere: list at least two, first to last (or remove \"promotion\")")
	}
	seen := map[string]int{}
	for i, s := range o {
		ptr := "/promotion/" + strconv.Itoa(i)
		switch {
		case s.Env == "":
			v.bad(ptr+"/env", "want an environment name")
		case s.Env == BaseEnv || !envNameRe.MatchString(s.Env):
			v.bad(ptr+"/env", "%q is not an environment name (a folder of iac/, not %s)", s.Env, BaseEnv)
		}
		if j, dup := seen[s.Env]; dup && s.Env != "" {
			v.bad(ptr+"/env", "%q is listed twice (also at /promotion/%d): a change passes each environment once", s.Env, j)
		}
		seen[s.Env] = i
		if s.Soak == "" {
			continue
		}
		d, err := time.ParseDuration(s.Soak)
		switch {
		case err != nil:
			v.bad(ptr+"/soak", "%q: want a duration such as \"30m\", \"2h\" or \"300ms\"", s.Soak)
		case d < 0:
			v.bad(ptr+"/soak", "%q: a soak cannot be negative", s.Soak)
		case i == len(o)-1:
			v.bad(ptr+"/soak", "%s is the last environment: there is no next one to wait for", s.Env)
		}
	}
	return v.errs
}

// String is the order for people: "dev → qa → prod".
func (o PromotionOrder) String() string {
	out := ""
	for i, s := range o {
		if i > 0 {
			out += " → "
		}
		out += s.Env
	}
	return out
}
