package ssmevent

import (
	"encoding/json"
	"fmt"
	"testing"
)

// The awsdocs__rule-pattern__*.json samples are EventBridge rule patterns, not events: they are
// what an operator puts on the rule, and the events they let through are Decode's inputs. This
// tiny matcher implements the part of the pattern language they use (a field's value must equal
// one of the listed strings; objects nest), enough to generate every event each pattern matches
// and check what Decode does with it.

// match reports whether event matches pattern.
func match(pattern, event map[string]any) bool {
	for k, want := range pattern {
		got, ok := event[k]
		if !ok {
			return false
		}
		switch w := want.(type) {
		case map[string]any:
			g, ok := got.(map[string]any)
			if !ok || !match(w, g) {
				return false
			}
		case []any:
			found := false
			for _, v := range w {
				if v == got {
					found = true
				}
			}
			if !found {
				return false
			}
		default:
			return false
		}
	}
	return true
}

// expand lists every assignment of one value per array of pattern (nested objects included).
func expand(pattern map[string]any) []map[string]any {
	out := []map[string]any{{}}
	for k, v := range pattern {
		var choices []any
		switch w := v.(type) {
		case []any:
			choices = w
		case map[string]any:
			for _, m := range expand(w) {
				choices = append(choices, m)
			}
		}
		var next []map[string]any
		for _, o := range out {
			for _, c := range choices {
				n := map[string]any{}
				for kk, vv := range o {
					n[kk] = vv
				}
				n[k] = c
				next = append(next, n)
			}
		}
		out = next
	}
	return out
}

func TestRulePatterns(t *testing.T) {
	t.Parallel()
	tests := []struct {
		file    string
		ignored bool // events the pattern matches are Policy Actions
		count   int  // events the pattern matches (product of its lists)
		samples int  // vendor event samples the pattern matches, the sample's name substituted
	}{
		{"awsdocs__rule-pattern__parameter-change-all-ops.json", false, 3 * 4, 3},
		{"awsdocs__rule-pattern__parameter-change-update-only.json", false, 2, 1},
		{"awsdocs__rule-pattern__policy-action-all-types.json", true, 3 * 3, 0},
		{"awsdocs__rule-pattern__policy-action-expiration.json", true, 1, 0},
	}
	samples := map[string]map[string]any{}
	for _, n := range sampleNames(t) {
		var m map[string]any
		if err := json.Unmarshal(sample(t, n), &m); err != nil {
			t.Fatal(err)
		}
		samples[n] = m
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			t.Parallel()
			var pattern map[string]any
			if err := json.Unmarshal(sample(t, tt.file), &pattern); err != nil {
				t.Fatal(err)
			}
			events := expand(pattern)
			if len(events) != tt.count {
				t.Fatalf("%d events, want %d", len(events), tt.count)
			}
			for i, e := range events {
				// Complete the envelope as EventBridge would.
				e["version"], e["id"], e["account"], e["time"], e["region"] = "0", fmt.Sprintf("id-%d", i), "123456789012", "2019-01-01T00:00:00Z", "us-east-2"
				e["resources"] = []any{}
				if !match(pattern, e) {
					t.Fatalf("generated event %v does not match its pattern", e)
				}
				b, _ := json.Marshal(e)
				ev, err := Decode(b)
				if err != nil {
					t.Fatalf("Decode(%s) = %v", b, err)
				}
				d := e["detail"].(map[string]any)
				if tt.ignored {
					if ev.Ignored == nil || ev.Ignored.DetailType != DetailTypePolicyAction {
						t.Errorf("policy action %s: %+v", b, ev)
					}
					continue
				}
				// Names exactly as matched, with or without a leading slash; every documented
				// operation, LabelParameterVersion included.
				if ev.Ignored != nil || ev.Name != d["name"] || ev.Operation != d["operation"] || ev.ID != e["id"] {
					t.Errorf("change %s: %+v", b, ev)
				}
			}
			// The vendor change samples against this pattern: the all-ops pattern lists other
			// names, so a pattern with the sample's name substituted must match exactly the
			// change samples with a listed operation.
			matched := 0
			for n, s := range samples {
				if s["detail-type"] == nil || s["id"] == nil {
					continue // patterns, batches and HTTP requests are not events
				}
				p := clonePattern(pattern)
				if d, ok := p["detail"].(map[string]any); ok {
					for _, key := range []string{"name", "parameter-name"} {
						if _, ok := d[key]; ok {
							d[key] = []any{"MyExampleParameter"}
						}
					}
				}
				ev, err := Decode(sample(t, n))
				if err != nil {
					t.Fatalf("%s: %v", n, err)
				}
				if match(p, s) {
					matched++
					if (ev.Ignored != nil) != tt.ignored {
						t.Errorf("%s matches %s but Decode gives %+v", n, tt.file, ev)
					}
				}
			}
			if matched != tt.samples {
				t.Errorf("%d vendor samples match, want %d", matched, tt.samples)
			}
		})
	}
}

func clonePattern(p map[string]any) map[string]any {
	b, _ := json.Marshal(p)
	var out map[string]any
	_ = json.Unmarshal(b, &out)
	return out
}

func TestMatcher(t *testing.T) {
	t.Parallel()
	p := map[string]any{"source": []any{"aws.ssm"}, "detail": map[string]any{"operation": []any{"Update"}}}
	for _, tt := range []struct {
		e    map[string]any
		want bool
	}{
		{map[string]any{"source": "aws.ssm", "detail": map[string]any{"operation": "Update"}}, true},
		{map[string]any{"source": "aws.ssm", "detail": map[string]any{"operation": "Delete"}}, false},
		{map[string]any{"source": "aws.ec2", "detail": map[string]any{"operation": "Update"}}, false},
		{map[string]any{"source": "aws.ssm"}, false},
		{map[string]any{"source": "aws.ssm", "detail": "Update"}, false},
	} {
		if got := match(p, tt.e); got != tt.want {
			t.Errorf("match(%v) = %v", tt.e, got)
		}
	}
}
