package model

// MergePatch applies patch to target by the rules of JSON Merge Patch (RFC 7386): objects merge
// key by key, null deletes a key, anything else (arrays included) replaces. Neither input is
// modified; the result shares no maps with patch (it may share leaves with target).
func MergePatch(target, patch any) any {
	p, ok := patch.(map[string]any)
	if !ok {
		return cloneValue(patch)
	}
	t, ok := target.(map[string]any)
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
