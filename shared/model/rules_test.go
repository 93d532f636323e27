package model

import (
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"
)

// settingsErrors unwraps Validate's joined error into its *SettingsErrors, "pointer: problem".
func settingsErrors(t *testing.T, err error) []string {
	t.Helper()
	if err == nil {
		return nil
	}
	joined, ok := err.(interface{ Unwrap() []error })
	if !ok {
		t.Fatalf("Validate returned %T, want errors.Join of *SettingsError", err)
	}
	var out []string
	for _, e := range joined.Unwrap() {
		var se *SettingsError
		if !errors.As(e, &se) {
			t.Fatalf("%v is a %T, want *SettingsError", e, e)
		}
		out = append(out, se.Pointer+": "+se.Problem)
	}
	return out
}

func TestValidateReportsEveryBadRule(t *testing.T) {
	t.Parallel()
	s := Settings{Prefix: "iac/", Aliases: map[string]string{"zone": "Route53"}, References: &ReferenceRules{
		Attributes: []AttributeRule{
			{Name: "Bad Name", Type: "Route53", Normalize: []string{"lower", "upper"}, When: &Condition{}, Consumes: []string{"zone_id", ""}},
			{Name: "zone", Key: "k", Type: "t", Attribute: "a", When: &Condition{Key: "x", Equals: map[string]any{"a": 1.0}}},
		},
		RuntimePaths: []RuntimePathRule{{Name: "zone", KeySuffix: "a/b"}},
		SameNickname: []SameNicknameRule{{Name: "self", From: "lambda", To: "lambda"}, {Name: "x", To: "S3"}},
		SubRuntimes:  []SubRuntimeRule{{Name: "subs"}},
		Disable:      []string{"api-lambda", "nope"},
	}}
	want := []string{
		`/prefix: "iac/": want a parameter path such as /iac (no trailing slash)`,
		`/aliases/zone: key "zone" must end in _nickname`,
		`/aliases/zone: "zone" maps to "Route53", which is not a component type name`,
		`/references/attributes/0/name: rule name "Bad Name": use lower-case letters, digits, '.', '-' and '_'`,
		`/references/runtime_paths/0/name: rule name "zone" is also used at /references/attributes/1`,
		`/references/attributes/0/key: want a config key, found an empty string`,
		`/references/attributes/0/type: "Route53" is not a component type name (lower-case letters, digits, '-' and '_')`,
		`/references/attributes/0/attribute: want a config key, found an empty string`,
		`/references/attributes/0/consumes/1: want a runtime key name (or "*"), found an empty string`,
		`/references/attributes/0/normalize/1: unknown normaliser "upper" (known: lower, trim-space, trim-trailing-dot)`,
		`/references/attributes/0/when/key: want a config key, found an empty string`,
		`/references/attributes/0/when/equals: want the JSON value the key must equal (null never matches: a null key is deleted)`,
		`/references/attributes/1/when/equals: want a string, number or boolean, found an object`,
		`/references/runtime_paths/0/key_suffix: "a/b": a key suffix cannot hold '/'`,
		`/references/same_nickname/0/to: a component cannot depend on itself (from and to are both "lambda")`,
		`/references/same_nickname/1/from: "" is not a component type name (lower-case letters, digits, '-' and '_')`,
		`/references/same_nickname/1/to: "S3" is not a component type name (lower-case letters, digits, '-' and '_')`,
		`/references/sub_runtimes/0/type: "" is not a component type name (lower-case letters, digits, '-' and '_')`,
		`/references/sub_runtimes/0/each_key_of: want a config key, found an empty string`,
		`/references/disable/1: "nope" is not a default rule (defaults: route53-zone-by-name, runtime-path, api-lambda, api-openapi-bucket, lambda-functions)`,
	}
	got := settingsErrors(t, s.Validate())
	if !reflect.DeepEqual(got, want) {
		t.Errorf("errors:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if msg := s.Validate().Error(); !strings.Contains(msg, "at /references/attributes/0/type: ") {
		t.Errorf("the message names the JSON pointer: %s", msg)
	}
}

func TestDefaultRulesAreValid(t *testing.T) {
	t.Parallel()
	d := DefaultReferenceRules
	if got := settingsErrors(t, Settings{References: &d}.Validate()); len(got) != 0 {
		t.Errorf("the default rules do not validate:\n%s", strings.Join(got, "\n"))
	}
}

func TestDefaultsMergeRules(t *testing.T) {
	t.Parallel()
	names := func(r *ReferenceRules) []string {
		var out []string
		r.eachName(func(_, n string) { out = append(out, n) })
		return out
	}
	if got := names(Settings{}.Defaults().References); !reflect.DeepEqual(got, defaultRuleNames()) {
		t.Errorf("no karma.json rules: %v, want the defaults %v", got, defaultRuleNames())
	}
	own := &ReferenceRules{
		Attributes:   []AttributeRule{{Name: "route53-zone-by-name", Key: "zone", Type: "route53-zone", Attribute: "name", Required: true}},
		SameNickname: []SameNicknameRule{{Name: "site-bucket", From: "serverless-site", To: "s3-bucket"}},
		Disable:      []string{"api-lambda", "runtime-path"},
	}
	merged := Settings{References: own}.Defaults().References
	if got, want := names(merged), []string{"route53-zone-by-name", "api-openapi-bucket", "site-bucket", "lambda-functions"}; !reflect.DeepEqual(got, want) {
		t.Errorf("merged rules %v, want %v", got, want)
	}
	if a := merged.Attributes[0]; a.Key != "zone" || !a.Required {
		t.Errorf("a karma.json rule replaces the default of its name; got %+v", a)
	}
	if len(DefaultReferenceRules.SameNickname) != 2 || len(DefaultReferenceRules.RuntimePaths) != 1 {
		t.Error("merging changed the package defaults")
	}
}

func TestConditionEquality(t *testing.T) {
	t.Parallel()
	obj := func(v any) map[string]any { return map[string]any{"k": v} }
	cases := []struct {
		equals any
		value  any
		holds  bool
	}{
		{true, true, true},
		{true, false, false},
		{true, "true", false},
		{false, false, true},
		{2.0, numberOf("2"), true},
		{2.0, numberOf("2.0"), true},
		{2.0, numberOf("3"), false},
		{"on", "on", true},
		{"on", "ON", false},
	}
	for _, c := range cases {
		a := &attrRule{AttributeRule: AttributeRule{When: &Condition{Key: "k", Equals: c.equals}}, equal: canonicalScalar(c.equals)}
		if got := a.conditionHolds(obj(c.value)); got != c.holds {
			t.Errorf("equals %#v, value %#v: holds = %v, want %v", c.equals, c.value, got, c.holds)
		}
	}
	if (&attrRule{AttributeRule: AttributeRule{When: &Condition{Key: "k", Equals: true}}, equal: "true"}).conditionHolds(map[string]any{}) {
		t.Error("an absent key must never satisfy a condition")
	}
}

// numberOf is a number as configs are decoded (UseNumber).
func numberOf(s string) any { return json.Number(s) }
