package model

import (
	"fmt"
	"sort"
	"strings"
)

// linkRules resolves what the rules of karma.json need every component for, once all are
// resolved, in time linear in the components: it indexes the attributes rules match on, the
// components same_nickname rules point to, and the per-sub-object runtimes; then turns each
// component's attribute lookups and same_nickname rules into references. Diagnostics are added
// to the repository's.
func (r *Repo) linkRules() {
	l := linker{rules: r.rules, attrs: map[attrKey][]*Component{}, byRef: map[string]*Component{}, subOwners: map[string]*Component{}}
	for _, c := range r.Components {
		l.index(c)
	}
	for _, c := range r.Components {
		l.claimSubRuntimes(c)
	}
	for _, c := range r.Components {
		l.resolveLookups(c)
		l.sameNickname(c)
		c.pending = nil
	}
	r.subOwners = l.subOwners
	r.Diagnostics = append(r.Diagnostics, l.diags...)
}

// attrKey identifies the components of one environment whose attribute has one value for a rule.
type attrKey struct {
	env   string
	rule  int
	value string
}

type linker struct {
	rules     *compiledRules
	attrs     map[attrKey][]*Component
	byRef     map[string]*Component // "<env>/<type>/<nickname>", only for types rules point to
	subOwners map[string]*Component // "<env>/<type>/<name>" -> the component writing that runtime
	diags     Diagnostics
}

func (l *linker) index(c *Component) {
	for _, v := range c.pendingAttrs() {
		k := attrKey{env: c.Env, rule: v.rule.id, value: v.value}
		l.attrs[k] = append(l.attrs[k], c)
	}
	if _, sub := l.rules.subByType[c.Type]; sub || l.rules.sameTo[c.Type] {
		l.byRef[c.ID()] = c
	}
}

// claimSubRuntimes records which component writes each per-sub-object runtime. Two components
// writing one parameter (two lambdas defining one function, or a function named like another
// lambda component) is an error: the second write would replace the first.
func (l *linker) claimSubRuntimes(c *Component) {
	for _, name := range c.SubRuntimes {
		id := c.Env + "/" + c.Type + "/" + name
		path := RuntimeParam(l.rules.prefix, c.Type, name)
		rule := l.rules.subByType[c.Type]
		ptr := "/" + escapePointer(rule.EachKeyOf) + "/" + escapePointer(name)
		if other, ok := l.byRef[id]; ok && other != c {
			l.conflict(c, ptr, fmt.Sprintf("%s is written by %s as its own runtime and by %s for %s (rule %s)", path, other.ID(), c.ID(), name, rule.Name))
			continue
		}
		if other, ok := l.subOwners[id]; ok {
			l.conflict(c, ptr, fmt.Sprintf("%s is written by both %s and %s (rule %s)", path, other.ID(), c.ID(), rule.Name))
			continue
		}
		l.subOwners[id] = c
	}
}

func (l *linker) conflict(c *Component, ptr, msg string) {
	l.diags = append(l.diags, Diagnostic{Severity: SevError, Code: CodeRuntimeConflict, File: c.File(), Pointer: ptr, Component: c.ID(), Message: msg})
}

// resolveLookups turns each attribute lookup of c into a reference to the one component of the
// rule's type whose attribute matches.
func (l *linker) resolveLookups(c *Component) {
	for _, lk := range c.pendingLookups() {
		a := lk.rule
		found := l.attrs[attrKey{env: c.Env, rule: a.id, value: lk.value}]
		switch len(found) {
		case 1:
			c.References = append(c.References, Reference{Target: found[0].Ref(), Kind: RefAttribute, Pointer: lk.pointer, Rule: a.Name, Keys: a.keys})
		case 0:
			sev, what := SevWarning, "no edge (the module may find it outside Karma)"
			if a.Required {
				sev, what = SevError, "the rule is required"
			}
			l.diags = append(l.diags, Diagnostic{Severity: sev, Code: CodeMissingRef, File: c.File(), Pointer: lk.pointer, Component: c.ID(),
				Message: fmt.Sprintf("%s %q: no %s in %s has that %s (rule %s): %s", a.Key, lk.value, a.Type, c.Env, a.Attribute, a.Name, what)})
		default:
			ids := make([]string, len(found))
			for i, f := range found {
				ids[i] = f.ID()
			}
			sort.Strings(ids)
			l.diags = append(l.diags, Diagnostic{Severity: SevError, Code: CodeAmbiguousRef, File: c.File(), Pointer: lk.pointer, Component: c.ID(),
				Message: fmt.Sprintf("%s %q matches the %s of %d components: %s (rule %s)", a.Key, lk.value, a.Attribute, len(ids), strings.Join(ids, ", "), a.Name)})
		}
	}
}

// sameNickname adds c's references from same_nickname rules, for targets that exist.
func (l *linker) sameNickname(c *Component) {
	for _, r := range l.rules.sameFrom[c.Type] {
		if _, ok := l.byRef[c.Env+"/"+r.To+"/"+c.Nickname]; ok {
			c.References = append(c.References, Reference{Target: r.To + "/" + c.Nickname, Kind: RefSameNickname, Pointer: "", Rule: r.Name, Keys: consumedKeys(r.Consumes)})
		}
	}
}

func (c *Component) pendingAttrs() []attrValue {
	if c.pending == nil {
		return nil
	}
	return c.pending.attrs
}

func (c *Component) pendingLookups() []attrLookup {
	if c.pending == nil {
		return nil
	}
	return c.pending.lookups
}

// SubRuntimeOwner returns the component that writes the per-sub-object runtime
// "<prefix>/<type>/<name>/runtime" in env (ref is "<type>/<name>"), if any.
func (r *Repo) SubRuntimeOwner(env, ref string) (*Component, bool) {
	c, ok := r.subOwners[env+"/"+ref]
	return c, ok
}
