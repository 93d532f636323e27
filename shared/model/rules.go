package model

import (
	"encoding/json"
	"fmt"
	"regexp"
	"strconv"
	"strings"
)

// ReferenceRules are the declarative ways, beyond *_nickname keys, src_type + src_nickname and
// ${...} interpolations, in which a repository's modules find other components. They are set in
// karma.json under "references"; DefaultReferenceRules mirror today's modules (aws-iac), and a
// rule of karma.json replaces the default of the same name. docs/config-format.md describes each.
type ReferenceRules struct {
	// Attributes: a key's value names the component of a type whose attribute is equal to it.
	Attributes []AttributeRule `json:"attributes,omitempty"`
	// RuntimePaths: a value "<prefix>/<type>/<nickname>/runtime" under a key with a given suffix.
	RuntimePaths []RuntimePathRule `json:"runtime_paths,omitempty"`
	// SameNickname: a component of one type reads the component of another type of its nickname.
	SameNickname []SameNicknameRule `json:"same_nickname,omitempty"`
	// SubRuntimes: a type writes one runtime per key of an object of its config.
	SubRuntimes []SubRuntimeRule `json:"sub_runtimes,omitempty"`
	// Disable lists default rules (by name) not to apply.
	Disable []string `json:"disable,omitempty"`
}

// AttributeRule: the string value of Key (at any depth of a config) names the component of Type
// whose top-level Attribute is equal to it once both are normalised, when the condition holds.
type AttributeRule struct {
	Name      string     `json:"name"`
	Key       string     `json:"key"`
	Type      string     `json:"type"`
	Attribute string     `json:"attribute"`
	Normalize []string   `json:"normalize,omitempty"` // Normalizers, applied in order to both sides
	When      *Condition `json:"when,omitempty"`
	// Consumes lists the runtime keys read (absent: every key; []: ordering only).
	Consumes []string `json:"consumes,omitempty"`
	// Required makes "no component matches" an error; otherwise it is a warning (the module may
	// look the value up outside Karma, e.g. a hosted zone created by hand).
	Required bool `json:"required,omitempty"`
}

// Condition holds when the object holding the rule's key has Key equal to Equals (JSON
// equality; an absent key never equals).
type Condition struct {
	Key    string `json:"key"`
	Equals any    `json:"equals"`
}

// RuntimePathRule: a string value "<prefix>/<type>/<nickname>/runtime" under a key ending in
// KeySuffix ("" for any key) is a reference to that runtime.
type RuntimePathRule struct {
	Name      string   `json:"name"`
	KeySuffix string   `json:"key_suffix"`
	Consumes  []string `json:"consumes,omitempty"`
}

// SameNicknameRule: every component of type From depends on the component of type To with the
// same nickname, when there is one.
type SameNicknameRule struct {
	Name     string   `json:"name"`
	From     string   `json:"from"`
	To       string   `json:"to"`
	Consumes []string `json:"consumes,omitempty"`
}

// SubRuntimeRule: a component of Type writes "<prefix>/<Type>/<key>/runtime" for each key of the
// object at the top-level key EachKeyOf of its config (a lambda component, one runtime per
// function). A reference to such a runtime resolves to the component that writes it.
type SubRuntimeRule struct {
	Name      string `json:"name"`
	Type      string `json:"type"`
	EachKeyOf string `json:"each_key_of"`
}

// Normalizers usable in AttributeRule.Normalize.
var Normalizers = map[string]func(string) string{
	"lower":             strings.ToLower,
	"trim-space":        strings.TrimSpace,
	"trim-trailing-dot": func(s string) string { return strings.TrimSuffix(s, ".") },
}

// DefaultReferenceRules mirror how the aws-iac modules find each other (docs/config-format.md):
//   - serverless-site and serverless-api look their hosted zone up by route53_zone_name
//     (data "aws_route53_zone", case and trailing dot do not matter to Route 53) only when
//     enable_custom_domain is true, and use its zone_id;
//   - grafana reads vpc_runtime_path and clickhouse_runtime_path parameters;
//   - serverless-api resolves its routes' x-lambda-nickname to the runtime "arn" of the functions
//     its lambda of the same nickname defines, and its OpenAPI document is uploaded to the
//     s3-bucket of the same nickname (deploy_openapi.py's default, read as "bucket_name");
//   - lambda writes /iac/lambda/<function>/runtime for each key of functions.
var DefaultReferenceRules = ReferenceRules{
	Attributes: []AttributeRule{{Name: "route53-zone-by-name", Key: "route53_zone_name", Type: "route53-zone",
		Attribute: "zone_name", Normalize: []string{"lower", "trim-trailing-dot"},
		When: &Condition{Key: "enable_custom_domain", Equals: true}, Consumes: []string{"zone_id"}}},
	RuntimePaths: []RuntimePathRule{{Name: "runtime-path", KeySuffix: "_runtime_path"}},
	SameNickname: []SameNicknameRule{
		{Name: "api-lambda", From: "serverless-api", To: "lambda", Consumes: []string{"arn"}},
		{Name: "api-openapi-bucket", From: "serverless-api", To: "s3-bucket", Consumes: []string{"bucket_name"}},
	},
	SubRuntimes: []SubRuntimeRule{{Name: "lambda-functions", Type: "lambda", EachKeyOf: "functions"}},
}

var ruleNameRe = regexp.MustCompile(`^[a-z0-9][a-z0-9_.-]*$`)

// withDefaults returns the default rules, less those disabled or redefined by name, followed by
// the rules of r.
func (r *ReferenceRules) withDefaults() *ReferenceRules {
	own := map[string]bool{}
	if r != nil {
		for _, n := range r.Disable {
			own[n] = true
		}
		r.eachName(func(_, name string) { own[name] = true })
	}
	d := DefaultReferenceRules
	out := &ReferenceRules{
		Attributes:   keep(d.Attributes, own, func(x AttributeRule) string { return x.Name }),
		RuntimePaths: keep(d.RuntimePaths, own, func(x RuntimePathRule) string { return x.Name }),
		SameNickname: keep(d.SameNickname, own, func(x SameNicknameRule) string { return x.Name }),
		SubRuntimes:  keep(d.SubRuntimes, own, func(x SubRuntimeRule) string { return x.Name }),
	}
	if r != nil {
		out.Attributes = append(out.Attributes, r.Attributes...)
		out.RuntimePaths = append(out.RuntimePaths, r.RuntimePaths...)
		out.SameNickname = append(out.SameNickname, r.SameNickname...)
		out.SubRuntimes = append(out.SubRuntimes, r.SubRuntimes...)
	}
	return out
}

func keep[T any](rules []T, drop map[string]bool, name func(T) string) []T {
	var out []T
	for _, x := range rules {
		if !drop[name(x)] {
			out = append(out, x)
		}
	}
	return out
}

// eachName calls fn with the JSON pointer of every rule's name and the name.
func (r *ReferenceRules) eachName(fn func(ptr, name string)) {
	for i, x := range r.Attributes {
		fn(rulePtr("attributes", i), x.Name)
	}
	for i, x := range r.RuntimePaths {
		fn(rulePtr("runtime_paths", i), x.Name)
	}
	for i, x := range r.SameNickname {
		fn(rulePtr("same_nickname", i), x.Name)
	}
	for i, x := range r.SubRuntimes {
		fn(rulePtr("sub_runtimes", i), x.Name)
	}
}

func rulePtr(list string, i int) string { return "/references/" + list + "/" + strconv.Itoa(i) }

// validate reports every problem of the rules written in karma.json, each at its JSON pointer.
func (r *ReferenceRules) validate() []error {
	if r == nil {
		return nil
	}
	var v ruleValidator
	seen := map[string]string{}
	r.eachName(func(ptr, name string) {
		switch {
		case !ruleNameRe.MatchString(name):
			v.bad(ptr+"/name", "rule name %q: use lower-case letters, digits, '.', '-' and '_'", name)
		case seen[name] != "":
			v.bad(ptr+"/name", "rule name %q is also used at %s", name, seen[name])
		default:
			seen[name] = ptr
		}
	})
	for i, x := range r.Attributes {
		v.attribute(rulePtr("attributes", i), x)
	}
	for i, x := range r.RuntimePaths {
		v.consumes(rulePtr("runtime_paths", i), x.Consumes)
		if strings.Contains(x.KeySuffix, "/") {
			v.bad(rulePtr("runtime_paths", i)+"/key_suffix", "%q: a key suffix cannot hold '/'", x.KeySuffix)
		}
	}
	for i, x := range r.SameNickname {
		p := rulePtr("same_nickname", i)
		v.typeName(p+"/from", x.From)
		v.typeName(p+"/to", x.To)
		v.consumes(p, x.Consumes)
		if x.From == x.To && x.From != "" {
			v.bad(p+"/to", "a component cannot depend on itself (from and to are both %q)", x.From)
		}
	}
	for i, x := range r.SubRuntimes {
		p := rulePtr("sub_runtimes", i)
		v.typeName(p+"/type", x.Type)
		v.key(p+"/each_key_of", x.EachKeyOf)
	}
	for i, n := range r.Disable {
		if !isDefaultRule(n) {
			v.bad("/references/disable/"+strconv.Itoa(i), "%q is not a default rule (defaults: %s)", n, strings.Join(defaultRuleNames(), ", "))
		}
	}
	return v.errs
}

func isDefaultRule(name string) bool {
	for _, n := range defaultRuleNames() {
		if n == name {
			return true
		}
	}
	return false
}

func defaultRuleNames() []string {
	var names []string
	DefaultReferenceRules.eachName(func(_, name string) { names = append(names, name) })
	return names
}

// ruleValidator collects SettingsErrors.
type ruleValidator struct{ errs []error }

func (v *ruleValidator) bad(ptr, format string, a ...any) {
	v.errs = append(v.errs, &SettingsError{Pointer: ptr, Problem: fmt.Sprintf(format, a...)})
}

func (v *ruleValidator) typeName(ptr, t string) {
	if !validType(t) {
		v.bad(ptr, "%q is not a component type name (lower-case letters, digits, '-' and '_')", t)
	}
}

func (v *ruleValidator) key(ptr, k string) {
	if k == "" {
		v.bad(ptr, "want a config key, found an empty string")
	}
}

func (v *ruleValidator) consumes(rulePtr string, keys []string) {
	for i, k := range keys {
		if k == "" {
			v.bad(rulePtr+"/consumes/"+strconv.Itoa(i), "want a runtime key name (or \"*\"), found an empty string")
		}
	}
}

func (v *ruleValidator) attribute(p string, x AttributeRule) {
	v.key(p+"/key", x.Key)
	v.typeName(p+"/type", x.Type)
	v.key(p+"/attribute", x.Attribute)
	v.consumes(p, x.Consumes)
	for i, n := range x.Normalize {
		if Normalizers[n] == nil {
			v.bad(p+"/normalize/"+strconv.Itoa(i), "unknown normaliser %q (known: lower, trim-space, trim-trailing-dot)", n)
		}
	}
	if x.When != nil {
		v.key(p+"/when/key", x.When.Key)
		switch x.When.Equals.(type) {
		case nil:
			v.bad(p+"/when/equals", "want the JSON value the key must equal (null never matches: a null key is deleted)")
		case map[string]any, []any:
			v.bad(p+"/when/equals", "want a string, number or boolean, found %s", jsonKind(x.When.Equals))
		}
	}
}

// SettingsError is one problem in karma.json, at a JSON pointer.
type SettingsError struct {
	Pointer string // e.g. /references/attributes/0/type
	Problem string
}

func (e *SettingsError) Error() string { return "at " + e.Pointer + ": " + e.Problem }

// canonicalScalar is the JSON text of a condition's value, to compare it with config values
// decoded with UseNumber (json.Number) and karma.json values decoded as float64 alike.
func canonicalScalar(v any) string {
	if n, ok := v.(json.Number); ok {
		if f, err := n.Float64(); err == nil {
			v = f
		}
	}
	b, err := json.Marshal(v)
	if err != nil {
		return ""
	}
	return string(b)
}
