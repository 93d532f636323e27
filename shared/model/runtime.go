package model

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync"

	"github.com/usekarma/karma/shared/graph"
	"github.com/usekarma/karma/shared/params"
)

// RuntimeInfo is what the parameter store says about one component's outputs.
type RuntimeInfo struct {
	Status  string // graph.Runtime*
	Hash    string
	Keys    []string
	Version int64
}

// ParamState is one account's parameter store, read once with one recursive listing.
type ParamState struct {
	Environment string                 // value of <prefix>/environment, "" when unset
	Runtimes    map[string]RuntimeInfo // "<type>/<nickname>" -> runtime
	Configs     map[string]int64       // "<type>/<nickname>" -> version of its /config
}

// ReadParamState lists <prefix> recursively and classifies every parameter. Real-world shapes
// are tolerated with a warning: a runtime that is a bare string, per-key leaves under
// /runtime/<key>, paths with extra segments, placeholder runtimes ({"placeholder": true}).
// SecureString values are never read into the state beyond their key names.
func ReadParamState(ctx context.Context, store params.Store, prefix string) (*ParamState, Diagnostics, error) {
	ps, err := store.GetByPath(ctx, prefix)
	if err != nil {
		return nil, nil, fmt.Errorf("reading parameters under %s: %w", prefix, err)
	}
	// typically a config and a runtime per component
	st := &ParamState{Runtimes: make(map[string]RuntimeInfo, len(ps)/2+1), Configs: make(map[string]int64, len(ps)/2+1)}
	var diags Diagnostics
	warn := func(name, format string, a ...any) {
		diags = append(diags, Diagnostic{Severity: SevWarning, Code: CodeParamPath, File: name, Message: fmt.Sprintf(format, a...)})
	}
	leaves := map[string]map[string]any{}
	under := prefix + "/"
	for _, p := range ps {
		rest := strings.TrimPrefix(p.Name, under)
		if rest == "environment" {
			st.Environment = strings.TrimSpace(p.Value)
			continue
		}
		seg := strings.Split(rest, "/")
		switch {
		case len(seg) == 3 && seg[2] == "config":
			st.Configs[rest[:len(rest)-len("/config")]] = p.Version // "<type>/<nickname>"
		case len(seg) == 3 && seg[2] == "runtime":
			info, msg := parseRuntimeMemo(p)
			info.Version = p.Version
			if msg != "" {
				diags = append(diags, Diagnostic{Severity: SevWarning, Code: CodeRuntime, File: p.Name, Message: msg})
			}
			st.Runtimes[rest[:len(rest)-len("/runtime")]] = info
		case len(seg) == 4 && seg[2] == "runtime":
			ref := seg[0] + "/" + seg[1]
			if leaves[ref] == nil {
				leaves[ref] = map[string]any{}
			}
			leaves[ref][seg[3]] = leafValue(p)
		default:
			warn(p.Name, "ignored: not <prefix>/<type>/<nickname>/config or /runtime (%d segments under %s)", len(seg), prefix)
		}
	}
	for ref, m := range leaves {
		if _, whole := st.Runtimes[ref]; whole {
			warn(prefix+"/"+ref+"/runtime/", "per-key runtime leaves ignored: a whole runtime document exists too")
			continue
		}
		warn(prefix+"/"+ref+"/runtime/", "runtime assembled from %d per-key leaves (legacy shape); publish one JSON document instead", len(m))
		_, hash := Canonical(m)
		st.Runtimes[ref] = RuntimeInfo{Status: graph.RuntimePresent, Hash: hash, Keys: sortedKeys(m)}
	}
	return st, diags, nil
}

func leafValue(p params.Parameter) any {
	if p.Type == params.TypeSecureString {
		return "sha256:" + hashString(p.Value) // the key counts, the secret never leaves
	}
	return p.Value
}

func hashString(s string) string {
	_, h := Canonical(s)
	return h
}

// runtimeMemo holds parseRuntime's results by parameter: every build reads every runtime
// document again, and few change between two builds. It is bounded (runtimeMemoEntries,
// runtimeMemoBytes of values) and cleared when full; SecureString values are not kept.
var runtimeMemo struct {
	sync.Mutex
	m     map[runtimeMemoKey]parsedRuntime
	bytes int
}

type runtimeMemoKey struct{ name, value string }

type parsedRuntime struct {
	info RuntimeInfo // Keys shared by every result: read-only
	msg  string
}

const (
	runtimeMemoEntries  = 16384
	runtimeMemoBytes    = 16 << 20
	runtimeMemoMaxValue = 64 << 10 // larger values are parsed each time
)

// parseRuntimeMemo is parseRuntime, remembered by the parameter's name and value.
func parseRuntimeMemo(p params.Parameter) (RuntimeInfo, string) {
	if p.Type == params.TypeSecureString || len(p.Value) > runtimeMemoMaxValue {
		return parseRuntime(p)
	}
	key := runtimeMemoKey{p.Name, p.Value}
	runtimeMemo.Lock()
	got, ok := runtimeMemo.m[key]
	runtimeMemo.Unlock()
	if ok {
		return got.info, got.msg
	}
	info, msg := parseRuntime(p)
	info.Keys = slices.Clip(info.Keys) // an append by a caller never writes into the memo's
	runtimeMemo.Lock()
	defer runtimeMemo.Unlock()
	size := len(p.Name) + len(p.Value)
	if runtimeMemo.m == nil || len(runtimeMemo.m) >= runtimeMemoEntries || runtimeMemo.bytes+size > runtimeMemoBytes {
		runtimeMemo.m, runtimeMemo.bytes = map[runtimeMemoKey]parsedRuntime{}, 0
	}
	if _, ok := runtimeMemo.m[key]; !ok {
		runtimeMemo.m[key] = parsedRuntime{info, msg}
		runtimeMemo.bytes += size
	}
	return info, msg
}

// parseRuntime classifies a runtime document.
func parseRuntime(p params.Parameter) (RuntimeInfo, string) {
	if p.Type == params.TypeSecureString {
		return RuntimeInfo{Status: graph.RuntimePresent, Hash: hashString(p.Value)}, ""
	}
	obj, d := decodeObject(p.Name, []byte(p.Value))
	if d != nil {
		_, hash := Canonical(p.Value)
		return RuntimeInfo{Status: graph.RuntimeMalformed, Hash: hash},
			fmt.Sprintf("runtime is not a JSON object (%s); kept as an opaque value", d.Message)
	}
	_, hash := Canonical(obj)
	if ph, _ := obj["placeholder"].(bool); ph {
		return RuntimeInfo{Status: graph.RuntimePlaceholder, Hash: hash, Keys: sortedKeys(obj)}, ""
	}
	return RuntimeInfo{Status: graph.RuntimePresent, Hash: hash, Keys: sortedKeys(obj)}, ""
}

func sortedKeys(m map[string]any) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
