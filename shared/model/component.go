package model

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"

	"github.com/usekarma/karma/shared/graph"
)

// Reference kinds: how a dependency was found.
const (
	RefExplicit      = "explicit"      // karma.depends_on
	RefInferred      = "inferred"      // a *_nickname key, or src_type + src_nickname
	RefInterpolation = "interpolation" // "${<type>/<nickname>.runtime.<key>}" in a value
	// and, from the rules of karma.json: RefAttribute, RefRuntimePath, RefSameNickname (rulecompile.go)
)

// AllKeys in Reference.Keys means the dependent may read any key of the upstream runtime.
const AllKeys = "*"

// Reference is one dependency of a component on another in the same environment.
type Reference struct {
	Target  string   `json:"target"`         // "<type>/<nickname>"
	Kind    string   `json:"kind"`           // RefExplicit, RefInferred, RefInterpolation, RefAttribute, ...
	Pointer string   `json:"pointer"`        // JSON pointer in the resolved config (or karma block)
	Rule    string   `json:"rule,omitempty"` // the key or rule that produced it, e.g. "vpc_nickname", "route53-zone-by-name"
	Keys    []string `json:"keys"`           // runtime keys consumed; ["*"] = any; [] = ordering only
	// Redeploy is RedeployOnAnyApply when the dependent is redeployed after every apply of the
	// target, not only when a consumed key changed ("" = RedeployOnConsumedChange).
	Redeploy string `json:"redeploy,omitempty"`
}

// When a dependent is redeployed after its dependency was applied (karma.depends_on "redeploy").
const (
	RedeployOnConsumedChange = "on-consumed-change" // the default: a consumed runtime key changed
	RedeployOnAnyApply       = graph.RedeployOnAnyApply
)

// Component is one component in one environment, resolved.
type Component struct {
	Env      string
	Type     string
	Nickname string
	// Files are the layers that produced the resolved config, lowest first.
	Files []string
	// Resolved is the resolved config as compact JSON with sorted keys (nil when Broken).
	Resolved json.RawMessage
	// Hash is the hex SHA-256 of Resolved.
	Hash       string
	References []Reference
	// Broken is set when the component's own files could not be read or resolved; it still
	// exists (so that references to it are not reported as missing) but cannot be deployed.
	Broken bool
	// SubRuntimes name the runtimes it writes per sub-object, <prefix>/<type>/<name>/runtime
	// (a sub_runtimes rule: a lambda's functions), sorted.
	SubRuntimes []string

	// pending is what the reference rules need once every component is known (link.go); nil
	// for most components, and after linking.
	pending *pendingRules
}

// pendingRules are a component's inputs to linkRules.
type pendingRules struct {
	lookups []attrLookup // values it reads that attribute rules match
	attrs   []attrValue  // its own values of the attributes rules match on
}

// ID is "<env>/<type>/<nickname>".
func (c *Component) ID() string { return c.Env + "/" + c.Type + "/" + c.Nickname }

// Ref is "<type>/<nickname>", as other components name it.
func (c *Component) Ref() string { return c.Type + "/" + c.Nickname }

// File is the environment file that defines the component.
func (c *Component) File() string { return c.Files[len(c.Files)-1] }

// Canonical encodes v as compact JSON with sorted object keys and exact numbers (json.Number),
// byte for byte what json.Marshal gives (canonical.go writes decoded configs without
// reflection); it is what gets hashed and published.
func Canonical(v any) (json.RawMessage, string) {
	return hashed(canonicalJSON(v))
}

// hashed is canonical JSON with its hash.
func hashed(b []byte) (json.RawMessage, string) {
	sum := sha256.Sum256(b)
	return b, hex.EncodeToString(sum[:])
}
