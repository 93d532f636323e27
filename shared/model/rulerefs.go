package model

import (
	"fmt"
	"strings"
)

// ruleKeys applies the rules of karma.json to key k of obj (at the walker's pointer): an attributes rule
// reading k records a lookup, a runtime_paths rule whose suffix k has records a reference.
func (w *refWalker) ruleKeys(obj map[string]any, k string) {
	for _, a := range w.rules.attrByKey[k] {
		w.attributeKey(a, obj, k, w.at())
	}
	for _, r := range w.rules.paths {
		if strings.HasSuffix(k, r.KeySuffix) {
			w.runtimePathKey(r, k, obj[k], w.at())
		}
	}
}

func (w *refWalker) attributeKey(a *attrRule, obj map[string]any, k, ptr string) {
	s, ok := obj[k].(string)
	if !ok {
		if obj[k] != nil {
			w.diags = append(w.diags, Diagnostic{Severity: SevWarning, Code: CodeBadRef, Pointer: ptr,
				Message: fmt.Sprintf("%s should be a string naming a %s by its %s, found %s: not treated as a reference (rule %s)", k, a.Type, a.Attribute, jsonKind(obj[k]), a.Name)})
		}
		return
	}
	if !a.conditionHolds(obj) {
		return
	}
	if v := a.normalize(s); v != "" {
		w.lookups = append(w.lookups, attrLookup{rule: a, value: v, pointer: ptr})
	}
}

func (w *refWalker) runtimePathKey(r RuntimePathRule, k string, v any, ptr string) {
	s, ok := v.(string)
	if !ok || strings.Contains(s, "${") {
		return // not a path, or an interpolated one (the interpolation is the reference)
	}
	ref, ok := w.rules.parseRuntimePath(s)
	if !ok {
		if r.KeySuffix != "" { // under a key that promises a runtime path, say why it is not one
			w.diags = append(w.diags, Diagnostic{Severity: SevWarning, Code: CodeBadRef, Pointer: ptr,
				Message: fmt.Sprintf("%s: %q is not %s/<type>/<nickname>/runtime: not treated as a reference (rule %s)", k, s, w.rules.prefix, r.Name)})
		}
		return
	}
	w.refs = append(w.refs, Reference{Target: strings.Clone(ref), Kind: RefRuntimePath, Pointer: ptr, Rule: r.Name, Keys: consumedKeys(r.Consumes)})
}
