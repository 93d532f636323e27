package model

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sort"
	"strconv"
	"strings"
)

// Interpolate substitutes upstream runtime values into a resolved config, just before it is
// handed to Terraform. Every string value of the config (object keys are never touched) is
// scanned for "${<type>/<nickname>.runtime.<key>[.<path>]}":
//
//   - a string that is exactly one reference is replaced by the referenced value with its JSON
//     type kept (a list stays a list, a number stays a number);
//   - a reference embedded in a longer string is rendered as text: strings raw, other values as
//     compact JSON;
//   - "$${" is the escape for a literal "${" (and the text after it is not a reference);
//   - any other "${...}" (Terraform template syntax, malformed references) is left untouched.
//
// <path> is a dotted path into the runtime value: object keys, or decimal indexes into arrays.
// runtime is called once per distinct "<type>/<nickname>"; a nil map or an error from it, or a
// key or path that is not there, is an error naming the reference and the JSON pointer of the
// string that holds it. All such errors are reported together.
//
// Numbers are kept exact (decoded as json.Number). When the config has nothing to substitute
// or unescape, resolved is returned as is; otherwise the result is re-encoded compactly with
// sorted object keys.
func Interpolate(resolved json.RawMessage, runtime func(ref string) (map[string]any, error)) (json.RawMessage, error) {
	out, err := InterpolateRuntimes(resolved, func(ref string) (Runtime, error) {
		m, err := runtime(ref)
		return Runtime{Values: m}, err
	})
	return out.Config, err
}

// Runtime is an upstream component's runtime document as interpolation reads it.
type Runtime struct {
	Values map[string]any
	// Sensitive: the runtime is a SecureString parameter; every value taken from it is a secret.
	Sensitive bool
}

// Interpolated is a config with its references substituted.
type Interpolated struct {
	Config json.RawMessage
	// Sensitive are the JSON pointers (RFC 6901, sorted) of the values that hold a value taken
	// from a sensitive runtime, whole or inside a longer string: they must never be written to a
	// file, a log or a message (Terraform gets them as sensitive variables).
	Sensitive []string
}

// InterpolateRuntimes is Interpolate reading Runtimes, and says where sensitive values went.
func InterpolateRuntimes(resolved json.RawMessage, runtime func(ref string) (Runtime, error)) (Interpolated, error) {
	if !bytes.Contains(resolved, []byte("${")) {
		return Interpolated{Config: resolved}, nil
	}
	dec := json.NewDecoder(bytes.NewReader(resolved))
	dec.UseNumber()
	var root any
	if err := dec.Decode(&root); err != nil {
		return Interpolated{}, fmt.Errorf("interpolate: decoding config: %w", err)
	}
	ip := interpolator{runtime: runtime, cache: map[string]runtimeEntry{}, sensitive: map[string]bool{}}
	out := ip.value(root, "")
	if len(ip.errs) > 0 {
		return Interpolated{}, errors.Join(ip.errs...)
	}
	if !ip.changed {
		return Interpolated{Config: resolved}, nil
	}
	b, err := marshalNoEscape(out)
	if err != nil {
		return Interpolated{}, fmt.Errorf("interpolate: encoding config: %w", err)
	}
	return Interpolated{Config: b, Sensitive: slices.Sorted(maps.Keys(ip.sensitive))}, nil
}

type runtimeEntry struct {
	rt  Runtime
	err error
}

type interpolator struct {
	runtime   func(ref string) (Runtime, error)
	cache     map[string]runtimeEntry
	errs      []error
	changed   bool
	sensitive map[string]bool // JSON pointers of values taken from sensitive runtimes
}

func (ip *interpolator) value(v any, ptr string) any {
	switch x := v.(type) {
	case map[string]any:
		keys := make([]string, 0, len(x))
		for k := range x {
			keys = append(keys, k)
		}
		sort.Strings(keys) // deterministic error order
		for _, k := range keys {
			x[k] = ip.value(x[k], ptr+"/"+escapePointer(k))
		}
		return x
	case []any:
		for i, e := range x {
			x[i] = ip.value(e, ptr+"/"+strconv.Itoa(i))
		}
		return x
	case string:
		return ip.str(x, ptr)
	}
	return v
}

// str interpolates one string value.
func (ip *interpolator) str(s, ptr string) any {
	if !strings.Contains(s, "${") {
		return s
	}
	// Exactly one reference: the value keeps its JSON type.
	if strings.HasPrefix(s, "${") && strings.IndexByte(s, '}') == len(s)-1 {
		expr := s[2 : len(s)-1]
		if _, _, ok := ParseInterpolation(expr); ok {
			ip.changed = true
			v, secret, err := ip.lookup(expr)
			if err != nil {
				ip.fail(expr, ptr, err)
				return s
			}
			ip.markSensitive(ptr, secret)
			return v
		}
	}
	var b strings.Builder
	for i := 0; i < len(s); {
		if strings.HasPrefix(s[i:], "$${") {
			b.WriteString("${")
			i += 3
			ip.changed = true
			continue
		}
		if !strings.HasPrefix(s[i:], "${") {
			b.WriteByte(s[i])
			i++
			continue
		}
		end := strings.IndexByte(s[i:], '}')
		if end < 0 {
			b.WriteString(s[i:])
			break
		}
		expr := s[i+2 : i+end]
		whole := s[i : i+end+1]
		i += end + 1
		if _, _, ok := ParseInterpolation(expr); !ok {
			b.WriteString(whole) // not a Karma reference: left for whoever reads it next
			continue
		}
		ip.changed = true
		v, secret, err := ip.lookup(expr)
		if err != nil {
			ip.fail(expr, ptr, err)
			b.WriteString(whole)
			continue
		}
		ip.markSensitive(ptr, secret)
		if str, ok := v.(string); ok {
			b.WriteString(str)
			continue
		}
		enc, err := marshalNoEscape(v)
		if err != nil {
			ip.fail(expr, ptr, fmt.Errorf("rendering the value as JSON: %w", err))
			continue
		}
		b.Write(enc)
	}
	return b.String()
}

// markSensitive records that the value at ptr holds a value from a sensitive runtime.
func (ip *interpolator) markSensitive(ptr string, secret bool) {
	if secret {
		ip.sensitive[ptr] = true
	}
}

func (ip *interpolator) fail(expr, ptr string, err error) {
	p := ptr
	if p == "" {
		p = "/" // the config itself is a string: not a valid config, but say where
	}
	ip.errs = append(ip.errs, fmt.Errorf("${%s} at %s: %w", expr, p, err))
}

// lookup resolves "<type>/<nickname>.runtime.<key>[.<path>]" (already validated), and says
// whether the value comes from a sensitive runtime.
func (ip *interpolator) lookup(expr string) (any, bool, error) {
	ref, rest, _ := strings.Cut(expr, ".runtime.")
	e, ok := ip.cache[ref]
	if !ok {
		e.rt, e.err = ip.runtime(ref)
		ip.cache[ref] = e
	}
	if e.err != nil {
		return nil, false, fmt.Errorf("reading the runtime of %s: %w", ref, e.err)
	}
	if e.rt.Values == nil {
		return nil, false, fmt.Errorf("%s has no runtime (not deployed yet?)", ref)
	}
	segs := strings.Split(rest, ".")
	v, ok := e.rt.Values[segs[0]]
	if !ok {
		return nil, false, fmt.Errorf("the runtime of %s has no key %q (keys: %s)", ref, segs[0], strings.Join(sortedKeys(e.rt.Values), ", "))
	}
	for i, seg := range segs[1:] {
		at := segs[0]
		if i > 0 {
			at += "." + strings.Join(segs[1:i+1], ".")
		}
		switch x := v.(type) {
		case map[string]any:
			nv, ok := x[seg]
			if !ok {
				return nil, false, fmt.Errorf("%s.runtime.%s has no key %q", ref, at, seg)
			}
			v = nv
		case []any:
			n, err := strconv.Atoi(seg)
			if err != nil || n < 0 || n >= len(x) {
				return nil, false, fmt.Errorf("%s.runtime.%s is an array of %d: %q is not an index into it", ref, at, len(x), seg)
			}
			v = x[n]
		default:
			return nil, false, fmt.Errorf("%s.runtime.%s is %s, not an object or array: cannot select %q", ref, at, jsonKind(v), seg)
		}
	}
	return v, e.rt.Sensitive, nil
}

// marshalNoEscape is json.Marshal without HTML escaping ("<" stays "<") and without the
// encoder's trailing newline.
func marshalNoEscape(v any) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), nil
}
