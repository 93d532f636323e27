package api

import (
	"net/http"
	"strings"

	"github.com/usekarma/karma/shared/graph"
	"github.com/usekarma/karma/shared/model"
)

// GET /impact?component=<env>/<type>/<nickname>&keys=a,b&type=t — what a change to a component
// may redeploy: everything downstream, in waves, each with the chain of edges that links it to
// the component (graph.ImpactReport, as `karma impact --json`). keys, when given, are the
// runtime keys that changed: the first hop follows only the dependents consuming one of them.
// type keeps only the components of one type in the answer (the traversal is unchanged). The
// component may also be a runtime a component writes per sub-object (lambda/<function>): the
// first hop then follows only its readers.

func (s *server) getImpact(w http.ResponseWriter, r *http.Request, _ Caller) error {
	q := &query{r: r}
	id := q.str("component")
	parts := strings.Split(id, "/")
	if id == "" {
		q.fail("component", "required: the component whose change is asked about, <env>/<type>/<nickname>")
	} else if len(parts) != 3 || parts[0] == "" || parts[1] == "" || parts[2] == "" {
		q.fail("component", "want <env>/<type>/<nickname>, e.g. prod/vpc/core; got "+id)
	}
	var opts graph.ImpactOptions
	if keys := q.str("keys"); keys != "" {
		for _, k := range strings.Split(keys, ",") {
			if k = strings.TrimSpace(k); k == "" {
				q.fail("keys", "an empty key: give comma-separated runtime keys, e.g. vpc_id,private_subnet_ids")
			} else {
				opts.ChangedKeys = append(opts.ChangedKeys, k)
			}
		}
	}
	if typ := q.str("type"); typ != "" {
		opts.Filter = func(c *graph.Component) bool { return c.Type == typ }
	}
	if err := q.err(); err != nil {
		return err
	}
	res, err := s.current(r.Context(), parts[0], "/query/component")
	if err != nil {
		return err
	}
	if p := unknownType(res.Graph, q.str("type")); p != nil {
		return p
	}
	seed, runtime, ok := findSeed(res, parts[0], parts[1], parts[2])
	if !ok {
		p := notFound("no component %s: GET /graph?env=%s lists the environment's components", id, parts[0])
		p.Errors = []FieldError{{Pointer: "/query/component", Detail: "no such component"}}
		return p
	}
	opts.ChangedRuntime = runtime
	imp, err := res.Graph.Downstream([]int32{seed}, opts)
	if err != nil {
		return conflict("the graph of %s has a cycle, so no waves can be computed: %v", parts[0], err)
	}
	return writeJSON(w, http.StatusOK, res.Graph.Report(imp))
}

// findSeed looks a component up, else a runtime one writes per sub-object (runtime is then the
// parameter).
func findSeed(res *model.Result, env, typ, nick string) (seed int32, runtime string, ok bool) {
	if i, ok := res.Graph.Index(env + "/" + typ + "/" + nick); ok {
		return i, "", true
	}
	path := model.RuntimeParam(res.Repo.Settings.Prefix, typ, nick)
	if i, ok := res.Graph.SubRuntimeWriter(env, path); ok {
		return i, path, true
	}
	return 0, "", false
}
