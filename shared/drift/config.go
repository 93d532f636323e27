package drift

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"reflect"
	"slices"
	"strings"

	"github.com/usekarma/karma/shared/message"
	"github.com/usekarma/karma/shared/model"
	"github.com/usekarma/karma/shared/params"
)

// compareConfig compares a component's /config (p, nil when missing) with its resolved config
// at the head, canonically: the published value is the resolved config's canonical form, so an
// equal string is the fast path; anything else is decoded (numbers exact) and re-encoded
// canonically before its hash is compared with the component's.
func compareConfig(in Inputs, c *model.Component, p *params.Parameter, lastDeployment string) *Finding {
	name := model.ConfigParam(in.Prefix, c.Type, c.Nickname)
	f := &Finding{Env: in.Env, DriftDetected: message.DriftDetected{Component: c.ID(), Kind: message.DriftConfig, Commit: in.Commit, Expected: c.Hash}}
	if p == nil {
		f.Reason = message.DriftMissing
		f.Detail = fmt.Sprintf("%s is missing: Git defines %s in %s at %s", name, c.ID(), c.File(), short(in.Commit))
		f.identify(lastDeployment)
		return f
	}
	if p.Value == string(c.Resolved) {
		return nil
	}
	found, keys, same := canonicalCompare(p.Value, c)
	if same {
		return nil
	}
	f.Reason, f.Found = message.DriftDiffers, found
	f.Parameter = &message.ParameterVersion{Name: p.Name, Version: p.Version, ModifiedBy: p.LastModifiedUser}
	what := "is not JSON"
	if keys != nil {
		what = differ(keys)
	}
	f.Detail = fmt.Sprintf("%s version %d%s is not the resolved config of %s at %s: %s", name, p.Version, by(p.LastModifiedUser), c.File(), short(in.Commit), what)
	f.identify(lastDeployment)
	return f
}

// canonicalCompare decodes value and compares its canonical form with c's resolved config. It
// returns the value's canonical hash (of the raw bytes when it is not JSON), the top-level keys
// that differ (nil when value is not JSON), and whether the two are the same.
func canonicalCompare(value string, c *model.Component) (string, []string, bool) {
	v, err := decodeJSON([]byte(value))
	if err != nil {
		sum := sha256.Sum256([]byte(value))
		return hex.EncodeToString(sum[:]), nil, false
	}
	_, hash := model.Canonical(v)
	if hash == c.Hash {
		return hash, nil, true
	}
	want, _ := decodeJSON(c.Resolved)
	return hash, topLevelDiff(want, v), false
}

func decodeJSON(b []byte) (any, error) {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, err
	}
	if dec.More() {
		return nil, fmt.Errorf("data after the JSON value")
	}
	return v, nil
}

// topLevelDiff names the top-level keys whose values differ between two JSON documents; two
// documents that are not both objects differ as a whole ("(the whole value)").
func topLevelDiff(a, b any) []string {
	ma, okA := a.(map[string]any)
	mb, okB := b.(map[string]any)
	if !okA || !okB {
		return []string{"(the whole value)"}
	}
	var keys []string
	for k, v := range ma {
		if w, ok := mb[k]; !ok || !reflect.DeepEqual(v, w) {
			keys = append(keys, k)
		}
	}
	for k := range mb {
		if _, ok := ma[k]; !ok {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	return keys
}

// differ says which keys differ, naming at most ten.
func differ(keys []string) string {
	if len(keys) == 0 {
		return "the values differ"
	}
	shown := keys[:min(len(keys), 10)]
	s := strings.Join(shown, ", ")
	if len(keys) > len(shown) {
		s += fmt.Sprintf(" and %d more", len(keys)-len(shown))
	}
	if len(keys) == 1 {
		return s + " differs"
	}
	return s + " differ"
}

// orphan is the finding of a /config parameter whose component Git does not define.
func orphan(in Inputs, id string, p *params.Parameter) Finding {
	f := Finding{Env: in.Env, DriftDetected: message.DriftDetected{Component: id, Kind: message.DriftConfig, Reason: message.DriftOrphan,
		Commit: in.Commit, Parameter: &message.ParameterVersion{Name: p.Name, Version: p.Version, ModifiedBy: p.LastModifiedUser}}}
	if v, err := decodeJSON([]byte(p.Value)); err == nil {
		_, f.Found = model.Canonical(v)
	} else {
		sum := sha256.Sum256([]byte(p.Value))
		f.Found = hex.EncodeToString(sum[:])
	}
	f.Detail = fmt.Sprintf("%s version %d%s remains, but Git does not define %s at %s", p.Name, p.Version, by(p.LastModifiedUser), id, short(in.Commit))
	f.identify(in.State.Last[id].ID)
	return f
}
