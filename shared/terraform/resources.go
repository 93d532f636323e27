package terraform

import (
	"encoding/json"
	"reflect"

	tfjson "github.com/hashicorp/terraform-json"

	"github.com/usekarma/karma/shared/message"
)

// Placeholders written instead of values a plan must not show.
const (
	SensitiveValue = "(sensitive value)"
	UnknownValue   = "(known after apply)"
)

// ResourceChanges lists the managed resources a plan (terraform show -json) changes, for review:
// no-ops, reads and data sources are left out; values Terraform marks sensitive become
// SensitiveValue and values known only after apply UnknownValue; null attributes are dropped,
// and an update keeps only the attributes that change. At most message.MaxPlanResources are
// listed (truncated says more changed), and values are left out (ValuesOmitted) when one side
// is above message.MaxPlanValueBytes of JSON or the plan's values would pass
// message.MaxPlanValuesBytes.
func ResourceChanges(p *tfjson.Plan) (out []message.ResourceChange, truncated bool) {
	if p == nil {
		return nil, false
	}
	budget := message.MaxPlanValuesBytes
	for _, rc := range p.ResourceChanges {
		if rc == nil || rc.Change == nil || rc.Mode == tfjson.DataResourceMode {
			continue
		}
		a := rc.Change.Actions
		if a.NoOp() || a.Read() || len(a) == 0 {
			continue
		}
		if len(out) == message.MaxPlanResources {
			return out, true
		}
		c := message.ResourceChange{Address: rc.Address}
		for _, x := range a {
			c.Actions = append(c.Actions, string(x))
		}
		before, after := values(rc.Change)
		size := jsonSize(before) + jsonSize(after)
		if jsonSize(before) > message.MaxPlanValueBytes || jsonSize(after) > message.MaxPlanValueBytes || size > budget {
			c.ValuesOmitted = true
		} else {
			c.Before, c.After, budget = before, after, budget-size
		}
		out = append(out, c)
	}
	return out, false
}

// values are a change's before and after, redacted and reduced to what a reviewer needs.
func values(c *tfjson.Change) (before, after any) {
	before = redact(c.Before, c.BeforeSensitive, nil)
	after = redact(c.After, c.AfterSensitive, c.AfterUnknown)
	b, bok := before.(map[string]any)
	a, aok := after.(map[string]any)
	rawB, _ := c.Before.(map[string]any)
	rawA, _ := c.After.(map[string]any)
	unknown, _ := c.AfterUnknown.(map[string]any)
	if bok && aok && c.Actions.Update() {
		// An update: only the attributes that change (compared before redaction, so that a
		// changed secret still shows, as "(sensitive value)" on both sides).
		for k := range b {
			if _, u := unknown[k]; !u && reflect.DeepEqual(rawB[k], rawA[k]) {
				delete(b, k)
				delete(a, k)
			}
		}
		for k := range a {
			if _, u := unknown[k]; !u && reflect.DeepEqual(rawB[k], rawA[k]) {
				delete(a, k)
			}
		}
	}
	return nonEmpty(before), nonEmpty(after)
}

// redact copies v, replacing what sensitive marks (true, or a structure of trues mirroring v)
// with SensitiveValue and what unknown marks with UnknownValue — including attributes that
// are absent from v because they are unknown — and dropping null object attributes.
func redact(v, sensitive, unknown any) any {
	if sensitive == true {
		return SensitiveValue
	}
	if unknown == true {
		return UnknownValue
	}
	switch x := v.(type) {
	case map[string]any:
		s, _ := sensitive.(map[string]any)
		u, _ := unknown.(map[string]any)
		out := make(map[string]any, len(x))
		for k, val := range x {
			if r := redact(val, s[k], u[k]); r != nil {
				out[k] = r
			}
		}
		for k, mark := range u {
			if _, ok := out[k]; !ok && mark == true {
				out[k] = UnknownValue
			}
		}
		return out
	case []any:
		s, _ := sensitive.([]any)
		u, _ := unknown.([]any)
		out := make([]any, len(x))
		for i, val := range x {
			out[i] = redact(val, at(s, i), at(u, i))
		}
		return out
	case nil:
		if m, ok := unknown.(map[string]any); ok && len(m) > 0 {
			return redact(map[string]any{}, sensitive, unknown)
		}
	}
	return v
}

func at(list []any, i int) any {
	if i < len(list) {
		return list[i]
	}
	return nil
}

// nonEmpty turns an empty object into nil (absent).
func nonEmpty(v any) any {
	if m, ok := v.(map[string]any); ok && len(m) == 0 {
		return nil
	}
	return v
}

func jsonSize(v any) int {
	if v == nil {
		return 0
	}
	b, err := json.Marshal(v)
	if err != nil {
		return message.MaxPlanValuesBytes + 1
	}
	return len(b)
}
