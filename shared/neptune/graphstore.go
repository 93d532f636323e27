package neptune

import (
	"encoding/json"
	"fmt"
	"strings"

	gremlingo "github.com/apache/tinkerpop/gremlin-go/v3/driver"
	"github.com/usekarma/karma/shared/graph"
)

var (
	__     = gremlingo.T__
	tID    = gremlingo.T.Id
	tLabel = gremlingo.T.Label
	single = gremlingo.Cardinality.Single
	dirOut = gremlingo.Direction.Out
	dirIn  = gremlingo.Direction.In
)

// Labels (see the package comment for the whole mapping).
const (
	LabelComponent      = "component"
	LabelDependsOn      = "depends_on"
	LabelEmitsRuntimeTo = "emits_runtime_to"
	LabelGraphCommit    = "graph_commit"
)

// DefaultNamespace is the ns property of elements written without StoreOptions.Namespace.
const DefaultNamespace = "karma"

// StoreOptions configure a GraphStore or LineageStore.
type StoreOptions struct {
	// Namespace separates graphs sharing one cluster: every element has property ns = Namespace,
	// and its id is prefixed "<Namespace>:". Empty: ns "karma", ids unprefixed (production).
	Namespace string
	// BatchSize is the most rows (a component, or a depends_on edge with its emits_runtime_to
	// twin) written per request (default 500). Neptune's guidance is smaller batches (about 200
	// property records) when many writers run at once.
	BatchSize int
}

// maxBatchBytes keeps a request well under the driver's write buffer and the server's maximum
// content length.
const maxBatchBytes = 3 << 20

type namespace struct {
	ns, prefix string
}

func newNamespace(o StoreOptions) namespace {
	if o.Namespace == "" {
		return namespace{ns: DefaultNamespace}
	}
	return namespace{ns: o.Namespace, prefix: o.Namespace + ":"}
}

func (n namespace) id(s string) string { return n.prefix + s }

func (n namespace) strip(id any) string { return strings.TrimPrefix(fmt.Sprint(id), n.prefix) }

// GraphStore keeps the component graph as vertices and edges (graph.Store).
type GraphStore struct {
	c     *Client
	n     namespace
	batch int
}

var _ graph.Store = (*GraphStore)(nil)

// NewGraphStore returns the graph store of namespace o.Namespace on c.
func NewGraphStore(c *Client, o StoreOptions) *GraphStore {
	if o.BatchSize <= 0 {
		o.BatchSize = 500
	}
	return &GraphStore{c: c, n: newNamespace(o), batch: o.BatchSize}
}

// Component vertex property keys, in write order.
var componentKeys = []string{"env", "type", "nickname", "config_path", "runtime_path", "config_hash", "runtime_hash",
	"runtime_status", "broken", "files", "runtime_keys", "sub_runtime_paths", "hash"}

func jsonString(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		panic("neptune: marshal: " + err.Error()) // plain data, cannot fail
	}
	return string(b)
}

func anys(ss []string) []any {
	a := make([]any, len(ss))
	for i, s := range ss {
		a[i] = s
	}
	return a
}

func within(ss []string) gremlingo.Predicate { return gremlingo.P.Within(anys(ss)) }

func toInt(v any) int64 {
	switch x := v.(type) {
	case int64:
		return x
	case int32:
		return int64(x)
	case int:
		return int64(x)
	case int16:
		return int64(x)
	case int8:
		return int64(x)
	}
	return -1
}

// stringKeys turns a result map (keys may be T tokens or Directions) into one keyed by name.
func stringKeys(v any) map[string]any {
	m, ok := v.(map[any]any)
	if !ok {
		return nil
	}
	out := make(map[string]any, len(m))
	for k, v := range m {
		out[fmt.Sprint(k)] = v
	}
	return out
}

func str(v any) string {
	if v == nil {
		return ""
	}
	if s, ok := v.(string); ok {
		return s
	}
	return fmt.Sprint(v)
}
