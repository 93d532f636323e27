package model

import (
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// parseKarmaBlock reads the reserved `karma` object:
//
//	"karma": {
//	  "extends": "serverless-site/defaults",
//	  "depends_on": ["vpc/core", {"ref": "s3-bucket/logs", "consumes": ["bucket_arn"]}]
//	}
//
// A string entry of depends_on consumes every runtime key; the object form lists the keys it
// consumes ([] for ordering only) and may say when the dependent is redeployed: "redeploy":
// "on-consumed-change" (the default: when an apply of the dependency changed a key it consumes)
// or "on-any-apply" (after every apply of the dependency, whatever changed — for modules that
// need to run although no output they read changed).
func parseKarmaBlock(cfg map[string]any) (karmaBlock, Diagnostics) {
	var kb karmaBlock
	var diags Diagnostics
	bad := func(ptr, format string, a ...any) {
		diags = append(diags, Diagnostic{Severity: SevError, Code: CodeKarmaBlock, Pointer: ptr, Message: fmt.Sprintf(format, a...)})
	}
	raw, ok := cfg["karma"]
	if !ok {
		return kb, nil
	}
	m, ok := raw.(map[string]any)
	if !ok {
		bad("/karma", "the reserved \"karma\" key must be an object, found %s", jsonKind(raw))
		return kb, diags
	}
	for k, v := range m {
		switch k {
		case "extends":
			s, ok := v.(string)
			if !ok || !validRef(s) {
				bad("/karma/extends", "want \"<type>/<nickname>\", found %v", v)
				continue
			}
			kb.extends = strings.Clone(s) // kept after the parsed file is released
		case "depends_on":
			list, ok := v.([]any)
			if !ok {
				bad("/karma/depends_on", "want an array of \"<type>/<nickname>\" or {\"ref\", \"consumes\"} objects, found %s", jsonKind(v))
				continue
			}
			for i, e := range list {
				ptr := "/karma/depends_on/" + strconv.Itoa(i)
				d, err := parseDependsOn(e)
				if err != "" {
					bad(ptr, "%s", err)
					continue
				}
				kb.dependsOn = append(kb.dependsOn, Reference{Target: d.ref, Kind: RefExplicit, Pointer: ptr, Rule: "depends_on", Keys: d.keys, Redeploy: d.redeploy})
			}
		default:
			bad("/karma/"+escapePointer(k), "unknown key %q (known: extends, depends_on)", k)
		}
	}
	return kb, diags
}

// dependsOn is one parsed entry of karma.depends_on.
type dependsOn struct {
	ref      string
	keys     []string
	redeploy string // "" (RedeployOnConsumedChange) or RedeployOnAnyApply
}

// dependsOnKeys are the keys of the object form of a depends_on entry.
var dependsOnKeys = map[string]bool{"ref": true, "consumes": true, "redeploy": true}

func parseDependsOn(e any) (dependsOn, string) {
	switch x := e.(type) {
	case string:
		if !validRef(x) {
			return dependsOn{}, fmt.Sprintf("%q: want \"<type>/<nickname>\"", x)
		}
		return dependsOn{ref: strings.Clone(x), keys: anyKey()}, "" // clones: see parser.slice
	case map[string]any:
		for _, k := range sortedKeys(x) {
			if !dependsOnKeys[k] {
				return dependsOn{}, fmt.Sprintf("unknown key %q (known: ref, consumes, redeploy)", k)
			}
		}
		ref, _ := x["ref"].(string)
		if !validRef(ref) {
			return dependsOn{}, fmt.Sprintf("\"ref\": want \"<type>/<nickname>\", found %v", x["ref"])
		}
		d := dependsOn{ref: strings.Clone(ref), keys: anyKey()}
		if c, ok := x["consumes"]; ok {
			list, ok := c.([]any)
			if !ok {
				return dependsOn{}, "\"consumes\": want an array of runtime key names"
			}
			d.keys = []string{}
			for _, k := range list {
				s, ok := k.(string)
				if !ok || s == "" {
					return dependsOn{}, fmt.Sprintf("\"consumes\": %v is not a key name", k)
				}
				d.keys = append(d.keys, strings.Clone(s))
			}
		}
		if r, ok := x["redeploy"]; ok {
			switch r {
			case RedeployOnConsumedChange:
			case RedeployOnAnyApply:
				d.redeploy = RedeployOnAnyApply
			default:
				return dependsOn{}, fmt.Sprintf("\"redeploy\": want %q or %q, found %v", RedeployOnConsumedChange, RedeployOnAnyApply, r)
			}
		}
		return d, ""
	}
	return dependsOn{}, fmt.Sprintf("want \"<type>/<nickname>\" or an object, found %s", jsonKind(e))
}

// anyKey is Keys of a reference that may read any runtime key: one shared slice, whose length
// and capacity are 1 (an append copies it); nothing modifies a reference's keys in place.
func anyKey() []string { return anyKeys[:1:1] }

var anyKeys = []string{AllKeys}

func validRef(s string) bool {
	t, n, ok := strings.Cut(s, "/")
	return ok && validType(t) && validNickname(n)
}

// extractReferences walks a resolved config and returns every inferred and interpolated
// reference, in a deterministic order (sorted keys, array order), and the values that attribute
// rules will match once every component is known.
//
//   - a key ending in _nickname with a string value names "<type>/<value>", the type being the
//     alias table's entry for the key or the key's prefix with '_' -> '-';
//   - an object holding src_type and src_nickname names "<src_type>/<src_nickname>";
//   - a string containing "${<type>/<nickname>.runtime.<key>[.<path>]}" consumes <key> of that
//     component's runtime ("$${" is a literal "${");
//   - the rules of karma.json (rules.go): a key an attributes rule reads, when its condition
//     holds; a "<prefix>/<type>/<nickname>/runtime" value under a key a runtime_paths rule names.
//
// Nested objects (e.g. per-function configs under functions{}) are walked too.
func extractReferences(cfg map[string]any, rules *compiledRules) ([]Reference, []attrLookup, Diagnostics) {
	w := refWalker{rules: rules}
	w.walk(cfg, false)
	return w.refs, w.lookups, w.diags
}

// refWalker walks a config once, in canonical order, for its references and, when encode is
// set, its canonical JSON (what Canonical writes): one pass instead of one for the references
// and one for the encoding, with the keys of each object sorted once. JSON pointers are built in
// one buffer and made strings only for what is found. A walker is reused from component to
// component (reset), by one goroutine at a time.
type refWalker struct {
	rules   *compiledRules
	refs    []Reference
	lookups []attrLookup
	diags   Diagnostics

	encode bool
	out    []byte   // the canonical JSON written so far
	odd    bool     // a value Canonical leaves to json.Marshal was met: out is not to be used
	ptr    []byte   // JSON pointer of the value being walked
	keys   []string // sorted keys of the objects being walked, a stack
}

func (w *refWalker) reset() {
	clear(w.refs)
	w.refs, w.lookups, w.diags = w.refs[:0], nil, nil
	w.out, w.odd, w.ptr = w.out[:0], false, w.ptr[:0]
}

// at is the JSON pointer of the value being walked.
func (w *refWalker) at() string { return string(w.ptr) }

// walk walks v; skipKarma leaves out the reserved "karma" key of a component's merged layers (v
// is then the top level, and what is encoded is the resolved config).
func (w *refWalker) walk(v any, skipKarma bool) {
	switch x := v.(type) {
	case map[string]any:
		if x == nil {
			w.write("null")
			return
		}
		base := len(w.keys)
		for k := range x {
			if !skipKarma || k != "karma" {
				w.keys = append(w.keys, k)
			}
		}
		keys := w.keys[base:]
		slices.Sort(keys)
		if st, ok := x["src_type"]; ok {
			w.srcPair(st, x["src_nickname"])
		}
		w.write("{")
		n := len(w.ptr)
		for i, k := range keys {
			if w.encode {
				if i > 0 {
					w.out = append(w.out, ',')
				}
				w.out = append(appendJSONString(w.out, k), ':')
			}
			w.ptr = appendPointerToken(append(w.ptr[:n], '/'), k)
			if strings.HasSuffix(k, "_nickname") && k != "src_nickname" {
				w.nicknameKey(k, x[k], w.at())
			}
			w.ruleKeys(x, k)
			w.walk(x[k], false)
		}
		w.ptr = w.ptr[:n]
		w.write("}")
		clear(w.keys[base:])
		w.keys = w.keys[:base]
	case []any:
		if x == nil {
			w.write("null")
			return
		}
		w.write("[")
		n := len(w.ptr)
		for i, e := range x {
			if w.encode && i > 0 {
				w.out = append(w.out, ',')
			}
			w.ptr = strconv.AppendInt(append(w.ptr[:n], '/'), int64(i), 10)
			w.walk(e, false)
		}
		w.ptr = w.ptr[:n]
		w.write("]")
	case string:
		w.interpolations(x)
		if w.encode {
			w.out = appendJSONString(w.out, x)
		}
	case json.Number:
		if w.encode && !validNumber(string(x)) {
			w.odd = true
		}
		w.write(string(x))
	case bool:
		w.write(strconv.FormatBool(x))
	case nil:
		w.write("null")
	default:
		w.odd = true
	}
}

func (w *refWalker) write(s string) {
	if w.encode {
		w.out = append(w.out, s...)
	}
}

// appendPointerToken appends k escaped as a JSON pointer token ("~" -> "~0", "/" -> "~1").
func appendPointerToken(dst []byte, k string) []byte {
	for i := 0; i < len(k); i++ {
		switch k[i] {
		case '~':
			dst = append(dst, '~', '0')
		case '/':
			dst = append(dst, '~', '1')
		default:
			dst = append(dst, k[i])
		}
	}
	return dst
}

func (w *refWalker) nicknameKey(key string, v any, ptr string) {
	typ, ok := w.rules.aliases[key]
	if !ok {
		typ = strings.ReplaceAll(strings.TrimSuffix(key, "_nickname"), "_", "-")
	}
	s, ok := v.(string)
	if !ok || s == "" {
		if v != nil {
			w.diags = append(w.diags, Diagnostic{Severity: SevWarning, Code: CodeBadRef, Pointer: ptr,
				Message: fmt.Sprintf("%s should name a %s nickname, found %s: not treated as a reference", key, typ, jsonKind(v))})
		}
		return
	}
	if strings.Contains(s, "${") {
		return // an interpolated nickname; the interpolation itself is the reference
	}
	w.refs = append(w.refs, Reference{Target: typ + "/" + s, Kind: RefInferred, Pointer: ptr, Rule: key, Keys: anyKey()})
}

func (w *refWalker) srcPair(st, sn any) {
	ptr := w.at()
	t, ok1 := st.(string)
	n, ok2 := sn.(string)
	if !ok1 || !ok2 || !validRef(t+"/"+n) {
		w.diags = append(w.diags, Diagnostic{Severity: SevWarning, Code: CodeBadRef, Pointer: ptr + "/src_type",
			Message: fmt.Sprintf("src_type %v with src_nickname %v does not name a component: not treated as a reference", st, sn)})
		return
	}
	w.refs = append(w.refs, Reference{Target: t + "/" + n, Kind: RefInferred, Pointer: ptr + "/src_nickname", Rule: "src_type+src_nickname", Keys: anyKey()})
}

// interpolations finds "${<type>/<nickname>.runtime.<key>...}" in s. Other "${...}" (for
// example Terraform template syntax) are left alone; one that starts like a Karma reference but
// is malformed is an error.
func (w *refWalker) interpolations(s string) {
	for i := 0; i < len(s); {
		j := strings.Index(s[i:], "${")
		if j < 0 {
			return
		}
		j += i
		if j > 0 && s[j-1] == '$' { // "$${" escapes
			i = j + 2
			continue
		}
		end := strings.IndexByte(s[j:], '}')
		if end < 0 {
			return
		}
		expr := s[j+2 : j+end]
		i = j + end + 1
		ref, key, ok := ParseInterpolation(expr)
		if !ok {
			if strings.Contains(expr, ".runtime") && strings.Contains(expr, "/") {
				w.diags = append(w.diags, Diagnostic{Severity: SevError, Code: CodeBadRef, Pointer: w.at(),
					Message: fmt.Sprintf("malformed reference ${%s}: want ${<type>/<nickname>.runtime.<key>}", expr)})
			}
			continue
		}
		// clones: a parsed string is a slice of its whole file, which references outlive
		w.refs = append(w.refs, Reference{Target: strings.Clone(ref), Kind: RefInterpolation, Pointer: w.at(), Rule: "${" + expr + "}", Keys: []string{strings.Clone(key)}})
	}
}

// ParseInterpolation splits "<type>/<nickname>.runtime.<key>[.<path>]" into the component
// reference and the top-level runtime key it consumes.
func ParseInterpolation(expr string) (ref, key string, ok bool) {
	ref, rest, found := strings.Cut(expr, ".runtime.")
	if !found || !validRef(ref) {
		return "", "", false
	}
	key, _, _ = strings.Cut(rest, ".")
	if key == "" {
		return "", "", false
	}
	return ref, key, true
}

func escapePointer(k string) string {
	if !strings.ContainsAny(k, "~/") {
		return k
	}
	return strings.ReplaceAll(strings.ReplaceAll(k, "~", "~0"), "/", "~1")
}
