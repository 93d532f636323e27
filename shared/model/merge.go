package model

// MergePatch applies patch to target by the rules of JSON Merge Patch (RFC 7386): objects merge
// key by key, null deletes a key, anything else (arrays included) replaces. Neither input is
// modified, and callers must not modify the result either: it may share maps and leaves with
// both inputs (layers are read-only once parsed).
func MergePatch(target, patch any) any {
	p, ok := patch.(map[string]any)
	if !ok {
		return cloneValue(patch)
	}
	t, ok := target.(map[string]any)
	if ok && len(t) == 0 && !hasNull(p) {
		return p // the common single-layer case: nothing to merge or delete, share the layer
	}
	out := make(map[string]any, len(p)+len(t))
	if ok {
		for k, v := range t {
			out[k] = v
		}
	}
	for k, v := range p {
		if v == nil {
			delete(out, k)
			continue
		}
		out[k] = MergePatch(out[k], v)
	}
	return out
}

// hasNull reports whether an object holds a null member at any depth (arrays excluded: nulls in
// arrays are values).
func hasNull(m map[string]any) bool {
	for _, v := range m {
		switch x := v.(type) {
		case nil:
			return true
		case map[string]any:
			if hasNull(x) {
				return true
			}
		}
	}
	return false
}

// cloneValue deep-copies a replacing value (arrays and scalars). Nulls inside arrays are values,
// not deletions, so they are kept.
func cloneValue(v any) any {
	if m, ok := v.(map[string]any); ok {
		out := make(map[string]any, len(m))
		for k, e := range m {
			out[k] = cloneValue(e)
		}
		return out
	}
	if a, ok := v.([]any); ok {
		out := make([]any, len(a))
		for i, e := range a {
			out[i] = cloneValue(e)
		}
		return out
	}
	return v
}
