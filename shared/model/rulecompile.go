package model

import (
	"fmt"
	"sort"
	"strings"
)

// Reference kinds produced by the rules of karma.json (rules.go).
const (
	RefAttribute    = "attribute"     // an attributes rule: a value equals another component's attribute
	RefRuntimePath  = "runtime-path"  // a runtime_paths rule: "<prefix>/<type>/<nickname>/runtime"
	RefSameNickname = "same-nickname" // a same_nickname rule
)

// compiledRules are the reference rules of a repository in the shape the walk of each config and
// the linking of components use. Built once per Load from defaulted Settings.
type compiledRules struct {
	prefix     string
	aliases    map[string]string
	attrs      []*attrRule
	attrByKey  map[string][]*attrRule // by the key read in the dependent's config
	attrByType map[string][]*attrRule // by the type whose attribute is indexed
	paths      []RuntimePathRule
	sameFrom   map[string][]SameNicknameRule // by the dependent's type
	sameTo     map[string]bool               // types some same_nickname rule points to
	subByType  map[string]SubRuntimeRule
}

// attrRule is an AttributeRule ready to evaluate.
type attrRule struct {
	AttributeRule
	id    int    // index in compiledRules.attrs
	equal string // canonical JSON of When.Equals ("" when there is no condition)
	norm  []func(string) string
	keys  []string // Consumes, defaulted
}

func (a *attrRule) normalize(s string) string {
	for _, f := range a.norm {
		s = f(s)
	}
	return s
}

// attrLookup is a value read by an attribute rule in a dependent, to be matched once every
// component is known.
type attrLookup struct {
	rule    *attrRule
	value   string // normalised
	pointer string
}

// attrValue is a component's own value of an attribute some rule matches on.
type attrValue struct {
	rule  *attrRule
	value string // normalised
}

// compileRules prepares s's rules; s must have been through Defaults (so References is set).
func compileRules(s Settings) *compiledRules {
	c := &compiledRules{prefix: s.Prefix, aliases: s.Aliases, attrByKey: map[string][]*attrRule{},
		attrByType: map[string][]*attrRule{}, sameFrom: map[string][]SameNicknameRule{}, sameTo: map[string]bool{},
		subByType: map[string]SubRuntimeRule{}}
	rules := s.References
	if rules == nil {
		rules = (*ReferenceRules)(nil).withDefaults()
	}
	for i, r := range rules.Attributes {
		a := &attrRule{AttributeRule: r, id: i, keys: consumedKeys(r.Consumes)}
		if r.When != nil {
			a.equal = canonicalScalar(r.When.Equals)
		}
		for _, n := range r.Normalize {
			a.norm = append(a.norm, Normalizers[n])
		}
		c.attrs = append(c.attrs, a)
		c.attrByKey[r.Key] = append(c.attrByKey[r.Key], a)
		c.attrByType[r.Type] = append(c.attrByType[r.Type], a)
	}
	c.paths = rules.RuntimePaths
	for _, r := range rules.SameNickname {
		c.sameFrom[r.From] = append(c.sameFrom[r.From], r)
		c.sameTo[r.To] = true
	}
	for _, r := range rules.SubRuntimes {
		c.subByType[r.Type] = r
	}
	return c
}

// consumedKeys defaults a rule's consumes: absent means every key.
func consumedKeys(keys []string) []string {
	if keys == nil {
		return []string{AllKeys}
	}
	return keys
}

// conditionHolds reports whether obj, the object holding a rule's key, satisfies its condition.
func (a *attrRule) conditionHolds(obj map[string]any) bool {
	if a.When == nil {
		return true
	}
	v, ok := obj[a.When.Key]
	if !ok {
		return false
	}
	if b, isBool := v.(bool); isBool { // the common case, without encoding
		return (b && a.equal == "true") || (!b && a.equal == "false")
	}
	return canonicalScalar(v) == a.equal
}

// indexValues returns the attribute values of a component of type typ that rules match on (cfg:
// its resolved config, or its merged layers, whose karma block is no attribute).
func (c *compiledRules) indexValues(typ string, cfg map[string]any) []attrValue {
	var out []attrValue
	for _, a := range c.attrByType[typ] {
		if s, ok := cfg[a.Attribute].(string); ok && a.Attribute != "karma" {
			if v := a.normalize(s); v != "" {
				out = append(out, attrValue{rule: a, value: v})
			}
		}
	}
	return out
}

// subRuntimes lists the names of the runtimes a component of type typ writes per sub-object
// (sorted), with a warning for each key that cannot be a parameter path segment.
func (c *compiledRules) subRuntimes(typ string, cfg map[string]any) ([]string, Diagnostics) {
	rule, ok := c.subByType[typ]
	if !ok {
		return nil, nil
	}
	raw, ok := cfg[rule.EachKeyOf]
	if !ok || rule.EachKeyOf == "karma" {
		return nil, nil
	}
	ptr := "/" + escapePointer(rule.EachKeyOf)
	obj, ok := raw.(map[string]any)
	if !ok {
		return nil, Diagnostics{{Severity: SevWarning, Code: CodeBadRef, Pointer: ptr,
			Message: fmt.Sprintf("%s: want an object whose keys name the runtimes this %s writes (rule %s), found %s", rule.EachKeyOf, typ, rule.Name, jsonKind(raw))}}
	}
	var names []string
	var diags Diagnostics
	for k := range obj {
		if !validNickname(k) {
			diags = append(diags, Diagnostic{Severity: SevWarning, Code: CodeBadRef, Pointer: ptr + "/" + escapePointer(k),
				Message: fmt.Sprintf("%q cannot name a runtime parameter (%s/%s/%s/runtime): letters, digits, '.', '-' and '_' only (rule %s)", k, c.prefix, typ, k, rule.Name)})
			continue
		}
		names = append(names, k)
	}
	sort.Strings(names)
	return names, diags
}

// parseRuntimePath splits "<prefix>/<type>/<nickname>/runtime" into "<type>/<nickname>".
func (c *compiledRules) parseRuntimePath(s string) (string, bool) {
	rest, ok := strings.CutPrefix(s, c.prefix+"/")
	if !ok {
		return "", false
	}
	ref, ok := strings.CutSuffix(rest, "/runtime")
	if !ok || !validRef(ref) {
		return "", false
	}
	return ref, true
}
